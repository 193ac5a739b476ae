"""Hydra callbacks: at the end of a multirun, tabulate the sweep into ``RESULTS.md``; and keep
secrets out of the files Hydra writes itself.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. The aggregation itself lives in
``reports`` so that ``python -m reports`` and this callback produce the same file. The callback
also notes which jobs of the sweep did not complete, in this process's
:class:`~runners.app.sweep_outcome.SweepOutcome`, which decides the exit status of ``run.py -m``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from runners.app import sweep_outcome

__all__ = [
    "RedactSecretsCallback",
    "ResultsTableCallback",
    "foreign_callbacks",
    "study_report_options",
]

log = logging.getLogger(__name__)

#: Where the callbacks this project trusts come from: its own packages and Hydra's.
TRUSTED_CALLBACK_PREFIXES = (
    "runners.",
    "reports.",
    "hydra_plugins.",
    "hydra.experimental.callbacks.",
)


def foreign_callbacks(config: DictConfig) -> list[str]:
    """``hydra.callbacks`` entries whose ``_target_`` is outside :data:`TRUSTED_CALLBACK_PREFIXES`,
    as ``name: target`` (a study or config file is code; this only points it out)."""
    callbacks = config.hydra.get("callbacks") or {}
    found = []
    for name, entry in callbacks.items():
        target = str(entry.get("_target_", "")) if isinstance(entry, DictConfig) else repr(entry)
        if not target.startswith(TRUSTED_CALLBACK_PREFIXES):
            found.append(f"{name}: {target}")
    return found


def _warn_foreign_callbacks(config: DictConfig) -> None:
    for entry in foreign_callbacks(config):
        name, _, target = entry.partition(": ")
        log.warning(
            "hydra.callbacks.%s: _target_ %r is not one of the project's or Hydra's own "
            "callbacks; Hydra has imported and built it. Study and config files are code: use "
            "only ones you trust (docs/ROBUSTNESS.md, Trust)",
            name,
            target,
        )


def study_report_options(config: DictConfig, sweep_dir: Path) -> dict[str, Any]:
    """The options of a study's RESULTS.md, from its ``report`` keys: the keyword arguments of
    ``reports.write_results`` (but ``out``), which are also :class:`reports.ReportOptions`'s.
    The seeds sweeper (``runners.seeds``) analyses the records with the same options."""
    report = config.get("report", {})
    rows = report.get("rows", "regularizer")
    columns = report.get("columns", "batch")
    # Deltas against no regularizer whenever the regularizer is one of the pivot's keys.
    baseline = report.get("baseline", "regularizer=none")
    if baseline and baseline.partition("=")[0] not in (rows, columns):
        baseline = None
    return {
        "rows": rows,
        "columns": columns,
        "metrics": list(report.get("metrics", ["top1", "top5"])),
        "baseline": baseline,
        "include_stale": bool(report.get("include_stale", False)),
        "title": f"Study `{config.get('study', sweep_dir.name)}`",
    }


class ResultsTableCallback(Callback):
    """``on_multirun_end``: write the study's RESULTS.md (and ``plots/``) into the sweep dir.

    Reads ``report.rows``, ``report.columns``, ``report.metrics``, ``report.out`` and, when the
    config has them, ``report.baseline`` (default ``regularizer=none``) and
    ``report.include_stale`` (default false).
    """

    def __init__(self) -> None:
        self._before: sweep_outcome.Snapshot = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_outcome.current().mark_started()
        try:
            sweep_dir = Path(config.hydra.sweep.dir).resolve()
        except OmegaConfBaseException:
            return  # e.g. a study name that is not a plain name: the sweeper stops with it
        self._before = sweep_outcome.snapshot(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from reports import write_results

        if int(os.environ.get("RANK", "0")) != 0:
            return  # torchrun: every process ran the sweep; rank 0 tabulates it

        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_outcome.current().summarize(sweep_dir, self._before)
        report = config.get("report", {})
        try:
            path = write_results(
                [sweep_dir],
                out=sweep_dir / report.get("out", "RESULTS.md"),
                **study_report_options(config, sweep_dir),
            )
        except Exception:  # the records are safe; the table can be made with python -m reports
            log.exception("could not write the results table of %s", sweep_dir)
            sweep_outcome.current().fail()
            return
        log.info("results table: %s", path)
        print(f"results: {path}")


class RedactSecretsCallback(Callback):
    """Rewrites Hydra's own files without passwords, tokens or keys (``runners.core.redact``).

    Hydra saves ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` in the job
    directory just before ``on_job_start``, and a multirun's ``multirun.yaml`` before its first
    job, copying every override as given: ``hydra.job.env_set.WANDB_API_KEY=...``, or the value
    of a variable named in ``hydra.job.env_copy``. ``on_job_start`` rewrites them redacted (a
    file without secrets is not touched), before the job runs; ``on_multirun_end`` checks
    ``multirun.yaml`` again. The Optuna sweeper's storage URL never reaches these files with its
    password (``runners.search.sweep``).

    It also warns, when a run or multirun starts, about ``hydra.callbacks`` entries whose
    ``_target_`` is neither the project's nor Hydra's own (:func:`foreign_callbacks`): the
    command's study or config files brought code of their own.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _warn_foreign_callbacks(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _warn_foreign_callbacks(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runners.core.redact import redact_file

        hydra = config.hydra
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_file(saved / name)
        if hydra.mode == RunMode.MULTIRUN:
            redact_file(Path(hydra.sweep.dir) / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from runners.core.redact import redact_file

        redact_file(Path(config.hydra.sweep.dir) / "multirun.yaml")
