"""The job wrapper: check, lock, plan the rerun, record ``running``, fit, record the outcome.

Whatever happens inside training, ``run.json`` ends with the true status (``completed``;
``diverged`` when the loss blew up, see ``runners.engine.divergence``; the ``run_status`` an exception
carries, ``pruned`` from an Optuna trial, see ``runners.search.trial``; or ``failed`` with the
error and traceback) and the W&B run is finished (with a non-zero exit code unless completed,
and tagged ``diverged`` when it diverged), then the exception is re-raised. A config error is
raised before anything is written, so a bad command leaves no record behind.

One process writes a job directory at a time (``runners.core.job_lock``): a job held by another
live process is left to it (:class:`~runners.core.job_lock.JobLocked`). What an earlier record in
the directory means (skip, resume from the checkpoint, or start fresh) is decided by
``runners.rerun``; a record that is replaced is kept in ``history/``.
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

from runners.config import config_hash, resolved_container
from runners.config.preflight import preflight
from runners.core.atomic_write import remove_orphans
from runners.core.job_lock import JobLock, JobLocked
from runners.core.record import RECORD_NAME, CodeVersion, RunRecord
from runners.dist import distributed
from runners.engine.checkpoint import load_checkpoint, remove_checkpoint
from runners.engine.divergence import DivergedError, DivergenceGuard
from runners.rerun import RerunPlan, keep_in_history, plan_rerun
from runners.search.trial import trial_from_env
from runners.tracking.environment import code_version, package_versions, resolve_device
from runners.tracking.trackers import NullTracker, create_tracker

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


def _lock(job_dir: Path, main: bool) -> JobLock | None:
    """Rank 0 takes the job's lock; every rank learns whether it got it (torchrun)."""
    lock, holder = (JobLock(job_dir) if main else None), None
    if lock is not None:
        try:
            lock.acquire()
        except JobLocked as err:
            lock, holder = None, err.holder
    holder = distributed.broadcast_from_main(holder)
    if holder is not None:
        raise JobLocked(job_dir, holder)
    return lock


def _prepare(
    cfg: DictConfig, job_dir: Path, digest: str, code: CodeVersion, main: bool
) -> tuple[RerunPlan, dict[str, Any] | None]:
    """Rank 0's rerun plan for the locked job dir, the checkpoint to resume (if any), and the
    directory made ready: orphaned temporaries removed, the earlier record kept in history, a
    checkpoint that will not be resumed removed."""
    if main:
        for directory in (job_dir, job_dir / ".hydra"):
            remove_orphans(directory)  # temporaries of a write that a kill interrupted
    plan = distributed.broadcast_from_main(
        plan_rerun(job_dir, digest, code, force=bool(cfg.force)) if main else None
    )
    if plan.action == "skip":
        return plan, None
    if (job_dir / RECORD_NAME).is_file():  # an earlier run, readable or not: say what happens
        log.info("rerunning %s (%s): %s", job_dir, plan.action, plan.reason)
    checkpoint = None
    if plan.action == "resume" and cfg.checkpoint.enabled and cfg.checkpoint.resume:
        checkpoint = load_checkpoint(job_dir, digest, code)  # CheckpointError: refused
    distributed.barrier()  # every rank has read the checkpoint before rank 0 changes the dir
    if main:
        kept = keep_in_history(job_dir)
        if kept is not None:
            log.info("the earlier run record is kept as %s", kept)
        if checkpoint is None and remove_checkpoint(job_dir):
            log.info("%s: its earlier checkpoint was removed (a %s start)", job_dir, plan.action)
    return plan, checkpoint


def _uses_cbn(regularizer_name: str) -> bool:
    """Whether the regularizer puts Cross-Iteration BN layers in the model (its registry entry)."""
    from regularizers.registry import find

    spec = find(str(regularizer_name))
    return spec is not None and spec.converts_bn


def _validate_world(cfg: DictConfig, world: distributed.World, device_type: str) -> None:
    """The rules of ``cfg`` that depend on the number of processes (``ConfigError``)."""
    distributed.validate_world(
        world,
        device_type,
        batch=cfg.batch,
        subdivisions=cfg.subdivisions,
        sync_bn=cfg.ddp.sync_bn,
        converts_bn=_uses_cbn(cfg.regularizer.name),
        regularizer_name=cfg.regularizer.name,
    )


def run_job(cfg: DictConfig, context: JobContext) -> RunRecord:
    """Run one training job described by ``cfg`` into ``context.job_dir``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this; they share rank 0's job
    dir, and only rank 0 writes the record and logs to W&B (``runners.dist.distributed``).

    Returns the job's record: the new one, or the earlier one when the job is skipped (already
    completed, or diverged, with this config and code). Raises
    :class:`~runners.config.ConfigError` before writing anything when the config, or the
    checkpoint it would resume, cannot make a run; :class:`~runners.core.job_lock.JobLocked` when
    another process holds the job; :class:`~runners.engine.divergence.DivergedError` (after recording
    ``diverged``) when the loss diverged.
    """
    preflight_job(cfg, context)
    # The Optuna trial this job is, when the Optuna sweeper launched it (else None).
    trial = trial_from_env()
    device = resolve_device(str(getattr(cfg.device, "value", cfg.device)))
    # torchrun: check the world, join the process group, agree on rank 0's job dir.
    world = distributed.current_world()
    _validate_world(cfg, world, device.type)
    config = resolved_container(cfg)
    digest, code = config_hash(config), code_version()
    device = distributed.init_process_group(world, device)
    job_dir = distributed.join_job_dir(context.job_dir)
    lock = _lock(job_dir, world.main)
    try:
        plan, checkpoint = _prepare(cfg, job_dir, digest, code, world.main)
        if plan.action == "skip":
            log.info("skipped %s: %s (force=true reruns it)", job_dir, plan.reason)
            return plan.previous
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
            mini_batch=distributed.bn_mini_batch(
                world, batch=cfg.batch, subdivisions=cfg.subdivisions, sync_bn=cfg.ddp.sync_bn
            ),
            world_size=world.size,
            started_at=_now(),
        )
        return _train(cfg, record, _Attempt(context, device, world.main, trial, checkpoint))
    finally:
        if lock is not None:
            lock.release()


def preflight_job(cfg: DictConfig, context: JobContext) -> None:
    """Every check that can fail before anything is written (``ConfigError``)."""
    from runners.config.darknet_net import adopt_net_options

    adopt_net_options(cfg, context.overrides)  # backbone=darknet: the cfg's [net] batch
    preflight(cfg)


@dataclass(frozen=True)
class _Attempt:
    """One attempt at a job once it is locked and planned: what training needs besides cfg."""

    context: JobContext
    device: Any
    main: bool
    trial: Any = None
    checkpoint: dict[str, Any] | None = None


def _tracker(cfg: DictConfig, record: RunRecord, attempt: _Attempt) -> Any:
    """The job's W&B run (rank 0), or a tracker that does nothing."""
    if not attempt.main:
        return NullTracker()
    trial_tags = attempt.trial.tags if attempt.trial else []
    return create_tracker(
        cfg.logger,
        job_dir=Path(record.job_dir),
        run_name=attempt.context.run_name,
        group=cfg.study,
        tags=_tags(record.config, record.mini_batch) + trial_tags,
        config=record.config,
    )


def _train(cfg: DictConfig, record: RunRecord, attempt: _Attempt) -> RunRecord:
    """Record ``running``, fit, and record the outcome whatever happens; finish tracking."""
    from runners.training import fit  # torch-heavy; keeps `run.py --help` fast

    job_dir, trial = Path(record.job_dir), attempt.trial
    write = (lambda r: r.write(job_dir)) if attempt.main else (lambda _r: None)
    write(record)
    tracker = _tracker(cfg, record, attempt)

    def on_epoch_end(current: RunRecord) -> None:
        write(current)  # fit has checked every loss of the epoch by now
        if trial is not None and attempt.main:
            trial.report(current)  # may raise PrunedByOptuna (run_status "pruned")

    start = time.perf_counter()
    try:
        fit(
            cfg,
            record,
            tracker,
            attempt.device,
            on_epoch_end=on_epoch_end,
            divergence=DivergenceGuard.from_config(cfg.divergence),
            checkpoint=attempt.checkpoint,
        )
        record.status = "completed"
    except DivergedError as err:
        record.status, record.error = "diverged", str(err)
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
        tracker.summary(_wandb_summary(record))
        tracker.finish(exit_code=0 if record.status == "completed" else 1)
        log.info("run record (%s): %s", record.status, job_dir / RECORD_NAME)
    return record


def _wandb_summary(record: RunRecord) -> dict[str, Any]:
    """What reports need to rebuild the record from W&B (reports/wandb_source.py)."""
    summary = {
        "status": record.status,
        "params": record.params,
        "flops": record.flops,
        "code_commit": record.code_version.commit,
        "code_dirty": record.code_version.dirty,
        "code_edits": record.code_version.edits,
        "started_at": record.started_at,
        "job_dir": record.job_dir,  # several W&B runs of one job: reports keep the newest
        "mini_batch": record.mini_batch,
        "world_size": record.world_size,
    }
    if record.status == "completed":
        summary |= {f"final_{k}": v for k, v in record.final.items()}
        summary |= {f"best_{k}": v for k, v in record.best.items()}
    return summary
