"""Entry point: ``python run.py [-m] key=value ...`` (Hydra 1.3).

Composes one config per job, runs it and returns its task's primary metric (Top-1 for
classification, AP for detection: the value a sweeper optimises).

Exit status:

- 0: every job completed (or was skipped as already completed or diverged, or is being run by
  another live process, which then writes its record).
- 1: a job failed or diverged. A single run says so in one line (a crash shows its traceback).
  In a multirun the failed job is recorded and the sweep goes on; RESULTS.md is written (the
  job under "Runs left out") and the command exits 1 at the end, as Hydra's does when a job
  raises.
- 2: the command is wrong (a bad key, value or option, a missing data directory, ...): one
  line ``error: ...`` naming the key, before anything is trained or recorded.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from runners.config import PRIMARY_METRIC, ConfigError, register_configs

register_configs()
log = logging.getLogger("run")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from runners.app.sweep_outcome import current as sweep_outcome
    from runners.core.job_lock import JobLocked
    from runners.data.images import DataError
    from runners.engine.divergence import DivergedError
    from runners.job import JobContext, run_job

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if not multirun and hydra_cfg.runtime.choices.get("seeds"):
        print(
            "error: seeds=auto runs a study in rounds of jobs: it needs a multirun "
            "(python run.py -m ablation=<study> seeds=auto)",
            file=sys.stderr,
        )
        sys.exit(2)
    sweep_outcome().mark_started()
    context = JobContext(
        job_dir=hydra_cfg.runtime.output_dir,
        run_name=hydra_cfg.job.override_dirname or "default",
        overrides=list(hydra_cfg.overrides.task),
    )
    try:
        record = run_job(cfg, context)
    except JobLocked as err:
        # Another live process is running this very job: leave it to that one, say so, go on.
        print(f"running elsewhere: {err}", file=sys.stderr)
        return None
    except ConfigError as err:
        # Nothing ran; the command is wrong. A multirun stops (with Hydra naming the job).
        if multirun:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        # ``pruned`` (an Optuna trial stopped by its pruner) carries its status on the exception.
        kind = (
            "diverged" if isinstance(err, DivergedError) else getattr(err, "run_status", "failed")
        )
        expected = isinstance(err, DivergedError | DataError) or kind == "pruned"
        text = DataError.one_line(err) if isinstance(err, DataError) else str(err)
        if not multirun and not expected:
            raise  # an unexpected crash of a single run: show the traceback
        log.error("job %s %s: %s", context.job_dir, kind, text, exc_info=not expected)
        print(f"{kind}: {context.job_dir}: {text}", file=sys.stderr)
        if not multirun:
            sys.exit(1)
        return None  # the sweep goes on; the results callback sets the exit status
    metric = PRIMARY_METRIC[cfg.task.name]
    value = record.final.get(metric)
    shown = "n/a" if value is None else f"{value:.2f}"
    print(f"run record: {record.job_dir}/run.json  ({metric}={shown})")
    return value


def cli() -> int:
    """Run ``main`` and return the exit status; composition errors become one line."""
    from runners.app.sweep_outcome import current as sweep_outcome
    from runners.config.hydra_errors import config_error, is_config_error
    from runners.core.redact import add_secrets_from_args, install_excepthook, redact

    add_secrets_from_args(sys.argv[1:])  # a password on the command line: never shown again
    install_excepthook()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()  # the user asked for Hydra's full tracebacks
        return sweep_outcome().exit_status()
    # Hydra re-raises instead of printing its multi-line report when HYDRA_FULL_ERROR=1;
    # this process then prints the one line that matters.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except Exception as err:
        # Composing the config, or a job's own ConfigError: the command is wrong. Once jobs
        # have started, anything else is a crash: show it all.
        if sweep_outcome().started and not is_config_error(err):
            raise
        overrides = [a for a in sys.argv[1:] if not a.startswith("-")]
        print(redact(f"error: {config_error(err, overrides)}"), file=sys.stderr)
        return 2
    return sweep_outcome().exit_status()


if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: ranks > 0 leave files to rank 0
        from runners.dist.distributed import worker_overrides

        sys.argv += worker_overrides()
    sys.exit(cli())
