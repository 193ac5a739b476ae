"""The job wrapper: check, skip if done, record ``running``, fit, record the outcome, finish tracking.

Whatever happens inside training, ``run.json`` ends with the true status (``completed``;
``diverged`` when the loss blew up, see ``runners.divergence``; the ``run_status`` an exception
carries, ``pruned`` from an Optuna trial, see ``runners.optuna_trial``; or ``failed`` with the
error and traceback) and the W&B run is finished (with a non-zero exit code unless completed,
and tagged ``diverged`` when it diverged), then the exception is re-raised. A config error is
raised before anything is written, so a bad command leaves no record behind. A job whose
directory already holds a completed run of the same config and code is not run again
(``runners.skip``; ``force=true`` reruns it).
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from runners import distributed
from runners.config import config_hash, resolved_container
from runners.divergence import DivergedError, DivergenceGuard
from runners.environment import code_version, package_versions, resolve_device
from runners.optuna_trial import trial_from_env
from runners.preflight import preflight
from runners.record import RECORD_NAME, RunRecord
from runners.skip import reusable_record
from runners.tracking import NullTracker, create_tracker

__all__ = ["JobContext", "run_job"]

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Where a job writes and what it is called (from Hydra, or given by a test)."""

    job_dir: Path
    run_name: str = "default"
    overrides: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tags(config: dict[str, Any], mini_batch: int) -> list[str]:
    return [
        f"regularizer={config['regularizer']['name']}",
        f"backbone={config['backbone']['name']}",
        f"batch={config['batch']}",
        f"mini_batch={mini_batch}",
    ]


def run_job(cfg: DictConfig, context: JobContext) -> RunRecord:
    """Run one training job described by ``cfg`` into ``context.job_dir``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this; they share rank 0's job
    dir, and only rank 0 writes the record and logs to W&B (``runners.distributed``).

    Returns the job's record: the new one, or the earlier completed one when the job is
    skipped. Raises :class:`~runners.config.ConfigError` before writing anything when the
    config cannot make a run, and :class:`~runners.divergence.DivergedError` (after recording
    ``diverged``) when the loss diverged.
    """
    from runners.darknet_net import adopt_net_options
    from runners.train import fit  # torch-heavy; keeps `run.py --help` fast

    adopt_net_options(cfg, context.overrides)  # backbone=darknet: the cfg's [net] batch
    preflight(cfg)
    # The Optuna trial this job is, when the Optuna sweeper launched it (else None).
    trial = trial_from_env()
    device = resolve_device(str(getattr(cfg.device, "value", cfg.device)))
    # torchrun: check the world, join the process group, agree on rank 0's job dir.
    world = distributed.current_world()
    distributed.validate_world(cfg, world, device.type)
    config = resolved_container(cfg)
    digest, code = config_hash(config), code_version()
    device = distributed.init_process_group(world, device)
    job_dir = distributed.join_job_dir(context.job_dir)
    write = (lambda r: r.write(job_dir)) if world.main else (lambda _r: None)
    if not cfg.force:
        previous = reusable_record(job_dir, digest, code)
        if previous is not None:
            log.info(
                "skipped %s: already completed with this config and code (force=true reruns it)",
                job_dir,
            )
            return previous
    record = RunRecord(
        status="running",
        study=cfg.study,
        run_name=context.run_name,
        job_dir=str(job_dir),
        overrides=list(context.overrides),
        config=config,
        config_hash=digest,
        code_version=code,
        packages=package_versions(),
        host=socket.gethostname(),
        device=str(device),
        batch=cfg.batch,
        subdivisions=cfg.subdivisions,
        mini_batch=distributed.bn_mini_batch(cfg, world),
        world_size=world.size,
        started_at=_now(),
    )
    write(record)
    tracker = (
        create_tracker(
            cfg.logger,
            job_dir=job_dir,
            run_name=context.run_name,
            group=cfg.study,
            tags=_tags(config, record.mini_batch) + (trial.tags if trial else []),
            config=config,
        )
        if world.main
        else NullTracker()
    )
    guard = DivergenceGuard.from_config(cfg.divergence)

    def on_epoch_end(current: RunRecord) -> None:
        write(current)
        guard.flush()  # losses not yet checked; raises DivergedError after the record is saved
        if trial is not None and world.main:
            trial.report(current)  # may raise PrunedByOptuna (run_status "pruned")

    start = time.perf_counter()
    try:
        fit(cfg, record, tracker, device, on_epoch_end=on_epoch_end, divergence=guard)
        record.status = "completed"
    except DivergedError as err:
        record.status = "diverged"
        record.error = str(err)
        tracker.mark("diverged", str(err))
        raise
    except BaseException as err:
        record.status = getattr(err, "run_status", "failed")
        record.error = f"{type(err).__name__}: {err}"
        record.traceback = traceback.format_exc()
        raise
    finally:
        record.ended_at = _now()
        record.wall_time_s = time.perf_counter() - start
        write(record)
        # What reports need to rebuild the record from W&B (reports/wandb_source.py).
        summary = {
            "status": record.status,
            "params": record.params,
            "flops": record.flops,
            "code_commit": record.code_version.commit,
            "code_dirty": record.code_version.dirty,
            "started_at": record.started_at,
            "mini_batch": record.mini_batch,
            "world_size": record.world_size,
        }
        if record.status == "completed":
            summary |= {f"final_{k}": v for k, v in record.final.items()}
            summary |= {f"best_{k}": v for k, v in record.best.items()}
        tracker.summary(summary)
        tracker.finish(exit_code=0 if record.status == "completed" else 1)
        log.info("run record (%s): %s", record.status, job_dir / RECORD_NAME)
    return record
