"""Experiment tracking beside the run record: Weights & Biases, or nothing.

W&B runs offline by default (no account, no network; ``wandb sync`` uploads later). In a Hydra
multirun all jobs share one process, so every job must ``finish()`` its run, failed ones
included, or later jobs log into the first run (wandb #1314, lightning-hydra-template #289);
:func:`runners.job.run_job` does that in ``finally``. ``logger=none`` never imports wandb.

A tracking failure never fails a run: it is reported once as a warning and the run record
still holds everything. That covers online mode without a key or a network (``wandb.init``
raises, or times out after ``logger.init_timeout`` seconds), a W&B directory that cannot be
written (checked before ``wandb.init``, which would otherwise fall back to a temporary
directory), and a disk that fills up during the run (the first failing call disables W&B for
the rest of the job).

W&B's system metadata is off (``x_disable_meta``): it would store the process's command line,
and with it any password given there (``runners.core.redact``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol

__all__ = ["NullTracker", "Tracker", "WandbTracker", "create_tracker"]

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def summary(self, values: dict[str, Any]) -> None: ...
    def mark(self, status: str, reason: str) -> None: ...
    def finish(self, exit_code: int) -> None: ...


class NullTracker:
    """Tracks nothing (``logger=none``, or W&B after a failure)."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def mark(self, status: str, reason: str) -> None:
        pass

    def finish(self, exit_code: int) -> None:
        pass


class WandbTracker:
    """One W&B run per job; every call after a W&B error is a no-op (warned once)."""

    def __init__(self, run: Any) -> None:
        self._run = run

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self._run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # tracking must never fail a run
            warnings.warn(
                f"W&B {what} failed ({type(err).__name__}: {err}); tracking disabled for this "
                f"run, run.json still holds everything",
                stacklevel=3,
            )
            run, self._run = self._run, None
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._run is not None:
            self._guard("log", self._run.log, metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self._run is not None:
            self._guard("summary", self._run.summary.update, values)

    def mark(self, status: str, reason: str) -> None:
        """Tag the run with its status (e.g. ``diverged``) and put the reason in its summary."""
        if self._run is not None:
            self._guard("tag", setattr, self._run, "tags", (*self._run.tags, status))
        self.summary({"status": status, "status_reason": reason})

    def finish(self, exit_code: int) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            try:
                run.finish(exit_code=exit_code)
            except Exception as err:
                warnings.warn(f"W&B finish failed: {err}", stacklevel=2)


def create_tracker(
    logger_cfg: Any,
    *,
    job_dir: Path,
    run_name: str,
    group: str,
    tags: list[str],
    config: dict[str, Any],
) -> Tracker:
    """A tracker for ``logger.name``; W&B files go to ``<job_dir>/wandb``."""
    if logger_cfg.name == "none":
        return NullTracker()
    mode = str(getattr(logger_cfg.mode, "value", logger_cfg.mode))
    wandb_dir = Path(job_dir) / "wandb"
    try:
        wandb_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=wandb_dir):
            pass
    except OSError as err:
        warnings.warn(
            f"W&B directory {wandb_dir} is not writable ({err}); continuing with run.json only",
            stacklevel=2,
        )
        return NullTracker()
    try:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=logger_cfg.project,
            entity=logger_cfg.entity,
            mode=mode,
            dir=str(job_dir),
            name=run_name,
            group=group,
            tags=tags,
            config=config,
            reinit="finish_previous",
            settings=wandb.Settings(
                console="off",
                x_disable_stats=True,
                # No system metadata: it holds the raw command line (``args``), which may carry
                # a password (a storage URL) and which `wandb sync` would upload. The run's
                # code version, packages and device are in run.json and the summary.
                x_disable_meta=True,
                init_timeout=float(getattr(logger_cfg, "init_timeout", 60.0)),
            ),
        )
    except Exception as err:
        warnings.warn(
            f"W&B init failed ({type(err).__name__}: {err}); continuing with run.json only",
            stacklevel=2,
        )
        return NullTracker()
    log.info("W&B run %s (%s) in %s", run.id, mode, run.dir)
    return WandbTracker(run)
