"""Entry point: ``python run.py [-m] key=value ...`` (Hydra 1.3).

Composes one config per job, runs it and returns its final Top-1 (the value a sweeper optimises).
A config error prints one line naming the key and exits with status 2 before anything trains.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runners.config import ConfigError, register_configs

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
    print(
        f"run record: {context.job_dir}/run.json  (top1={record.final.get('top1', float('nan')):.2f})"
    )
    return record.final.get("top1")


if __name__ == "__main__":
    main()
