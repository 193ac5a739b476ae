"""Entry point: ``python run.py [-m] key=value ...`` (Hydra 1.3).

Composes one config per job, runs it and returns its task's primary metric (Top-1 for
classification, AP for detection: the value a sweeper optimises).
A config error prints one line naming the key and exits with status 2 before anything trains.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runners.config import PRIMARY_METRIC, ConfigError, register_configs

register_configs()
log = logging.getLogger("run")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from runners.job import JobContext, run_job

    hydra_cfg = HydraConfig.get()
    context = JobContext(
        job_dir=hydra_cfg.runtime.output_dir,
        run_name=hydra_cfg.job.override_dirname or "default",
        overrides=list(hydra_cfg.overrides.task),
    )
    try:
        record = run_job(cfg, context)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    metric = PRIMARY_METRIC[cfg.task.name]
    value = record.final.get(metric)
    shown = "n/a" if value is None else f"{value:.2f}"
    print(f"run record: {record.job_dir}/run.json  ({metric}={shown})")
    return value


if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: ranks > 0 leave files to rank 0
        from runners.distributed import worker_overrides

        sys.argv += worker_overrides()
    main()
