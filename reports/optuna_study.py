"""An Optuna study's summary, written into its study directory.

Files (all rewritten on every call, so the latest worker to finish leaves the complete picture):

- ``best_overrides.txt``: the best trial's Hydra overrides on one line (``python run.py <line>``
  trains that configuration again);
- ``best_params.yaml``: the same as YAML, with the trial number, metric, value and job dir;
- ``TRIALS.md``: every trial (state, parameters, value, epochs run, job dir, error);
- ``optimization_history.png``, ``param_importances.png``, ``contour.png`` (the rate against the
  block size): Optuna's matplotlib plots (Agg backend, no display needed);
- ``RESULTS.md``: the run records' tables (``reports.write_results``), as for any study.

A study directory is recognised by its ``optuna_study.json`` (``runners.core.study_settings``).
That file is data: the storage URL written in it is opened only when it is a file inside the
study directory; any other storage (a database server) must be passed by the caller (the
sweeper, or ``python -m reports --storage URL``). Run records are read only from the trial
directories inside the study directory, whatever job directories the storage names.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from runners.core.atomic_write import atomic_write, remove_orphans
from runners.core.job_lock import report_lock
from runners.core.record import RECORD_NAME
from runners.core.study_settings import SETTINGS_NAME, StudySettings, objective_metric

__all__ = ["is_study_dir", "write_study_summary"]

log = logging.getLogger(__name__)

BEST_LINE = "best_overrides.txt"
BEST_YAML = "best_params.yaml"
TRIALS = "TRIALS.md"


def is_study_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an Optuna study directory (holds ``optuna_study.json``)."""
    return (Path(path) / SETTINGS_NAME).is_file()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ") if value is not None else ""


def _trial_record(study_dir: Path, trial: Any) -> Any:
    """The run record of ``trial``, read from its directory inside ``study_dir`` (by name: the
    storage's ``job_dir`` may point anywhere); ``None`` if missing or unreadable."""
    name = Path(str(trial.user_attrs.get("job_dir") or "")).name
    if not name or name in (".", ".."):
        return None
    path = study_dir / name / RECORD_NAME
    if not path.is_file():
        return None
    from reports.collect import read_record

    try:
        return read_record(path)
    except ValueError:  # an unreadable record: RESULTS.md lists it
        return None


def _epochs_run(study_dir: Path, trial: Any) -> int | None:
    record = _trial_record(study_dir, trial)
    if record is not None:
        return len(record.epochs)
    return len(trial.intermediate_values) or None


def _task(study_dir: Path, trials: list[Any]) -> str:
    """The task of the study's runs (``task.name`` of the first trial with a run record)."""
    for trial in trials:
        record = _trial_record(study_dir, trial)
        if record is not None:
            return record.config.get("task", {}).get("name", "")
    return ""


def _trials_table(
    study: Any, settings: StudySettings, metric: str, best: Any, study_dir: Path
) -> str:
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(name for t in trials for name in t.params))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    lines = [
        f"# Optuna study `{settings.study_name}`",
        "",
        f"{len(trials)} trials ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}); "
        f"objective: {'maximize' if settings.maximize else 'minimize'} validation {metric} "
        f"after the last epoch; pruner: {settings.pruner['name']}; "
        f"storage: `{settings.display()}` (`optuna-dashboard <storage>`).",
        "",
    ]
    if best is not None:
        lines += [
            f"Best: trial {best.number}, {metric} = {best.value:.4g}. "
            f"Train it again: `python run.py {' '.join(best.user_attrs.get('overrides', []))}`",
            "",
        ]
    header = ["trial", "state", *names, metric, "epochs run", "job dir", "error"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        value = t.value if t.value is not None else None
        job_dir = t.user_attrs.get("job_dir")
        row = [
            t.number,
            t.state.name.lower(),
            *(t.params.get(n) for n in names),
            value,
            _epochs_run(study_dir, t),
            f"`{Path(job_dir).name}`" if job_dir else None,
            t.user_attrs.get("error"),
        ]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    lines.append("")
    return "\n".join(lines)


def _contour_pair(names: list[str]) -> list[str] | None:
    """The rate and block size of one group (the last group that has both), else None."""
    for name in reversed(names):
        if name.endswith(".p"):
            prefix = name.removesuffix(".p")
            for other in (f"{prefix}.block_size", f"{prefix}.dropblock_size_abs"):
                if other in names:
                    return [name, other]
    rates = [n for n in names if n.endswith(".p")]
    sizes = [n for n in names if n.endswith("block_size")]
    return [rates[-1], sizes[-1]] if rates and sizes else None


def _plots(study: Any, study_dir: Path, metric: str) -> list[str]:
    """Write the PNG plots; returns notes for the plots that could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    names = list(dict.fromkeys(n for t in study.get_trials(deepcopy=False) for n in t.params))
    pair = _contour_pair(names)
    plots = {
        "optimization_history.png": lambda: vis.plot_optimization_history(
            study, target_name=metric
        ),
        "param_importances.png": lambda: vis.plot_param_importances(study, target_name=metric),
        "contour.png": lambda: vis.plot_contour(study, params=pair, target_name=metric),
    }
    notes = []
    for filename, draw in plots.items():
        if filename == "contour.png" and pair is None:
            notes.append(f"{filename}: no rate (.p) and block size among the parameters")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            atomic_write(
                study_dir / filename,
                lambda out, fig=figure: fig.savefig(
                    out, format="png", dpi=100, bbox_inches="tight"
                ),
            )
            plt.close(figure)
        except Exception as err:  # too few complete trials for importances, and the like
            notes.append(f"{filename}: not drawn ({type(err).__name__}: {err})")
            plt.close("all")
    return notes


def write_study_summary(study_dir: str | os.PathLike[str], storage: str | None = None) -> Path:
    """Write the study's summary files into ``study_dir`` under its report lock (workers of one
    study finishing together take turns); see :func:`_write_study_summary`."""
    with report_lock(study_dir):
        remove_orphans(study_dir)
        return _write_study_summary(study_dir, storage)


def _write_study_summary(study_dir: str | os.PathLike[str], storage: str | None) -> Path:
    """Write the study's summary files into ``study_dir``; returns the path of ``TRIALS.md``.

    Args:
        study_dir: the study directory (``optuna_study.json``, the trial directories).
        storage: the storage to open, from the caller's command line (a URL, ``journal:<path>``);
            ``None``: only the study's storage file inside ``study_dir``
            (:meth:`StudySettings.local_storage`), never a URL written in the settings file.

    Raises:
        ValueError: no storage was given and the study's is not a file inside ``study_dir``.
    """
    import optuna
    from optuna.trial import TrialState

    from reports.results import write_results

    study_dir = Path(study_dir).resolve()
    settings = StudySettings.read(study_dir)
    if storage is None:
        settings = dataclasses.replace(
            settings, storage=settings.local_storage(study_dir), password_env=None
        )
    else:
        spec = StudySettings.resolve_storage(storage, Path.cwd())
        settings = dataclasses.replace(settings, storage=spec, password_env=None)
    study = optuna.load_study(study_name=settings.study_name, storage=settings.open_storage())
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    finite = [t for t in complete if t.value is not None and math.isfinite(t.value)]
    best = None
    if finite:
        best = (max if settings.maximize else min)(finite, key=lambda t: t.value)
    metric = objective_metric(settings.metric, _task(study_dir, finite))
    if best is not None:
        overrides = list(best.user_attrs.get("overrides", []))
        atomic_write(study_dir / BEST_LINE, " ".join(overrides) + "\n")
        best_yaml = {
            "study": settings.study_name,
            "trial": best.number,
            "metric": metric,
            "value": best.value,
            "params": dict(best.params),
            "overrides": overrides,
            "job_dir": best.user_attrs.get("job_dir"),
        }
        atomic_write(study_dir / BEST_YAML, yaml.safe_dump(best_yaml, sort_keys=False))
    text = _trials_table(study, settings, metric, best, study_dir)
    notes = _plots(study, study_dir, metric) if complete else ["no complete trial: no plots"]
    if notes:
        text += "\nPlots left out:\n\n" + "".join(f"- {n}\n" for n in notes)
    target = study_dir / TRIALS
    atomic_write(target, text)
    write_results([study_dir], out=study_dir / "RESULTS.md", title=f"Study `{settings.study_name}`")
    return target
