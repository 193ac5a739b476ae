"""``RESULTS.md``: the study's comparison tables, written from any set of run records.

Sections, in a fixed order so that diffs of RESULTS.md between two runs of a study mean
something: per setting (task, data, backbone, epoch budget) the pivot of each metric (rows x
columns, ``mean ± std (n)``), its deltas against the baseline with Welch 95% intervals, and the
plots; then the CSPNet-style model table; then the runs left out and why (run records that
cannot be read among them, as ``unreadable`` with the reason); then how to read it.
Every entry point (``python -m reports``, the multirun callback, the Optuna sweeper) ends here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from reports.collect import COLUMNS, DETECTION_METRICS, curves_table, load_records, runs_table
from reports.deltas import Baseline, delta_table, parse_baseline
from reports.model_table import model_table
from reports.plots import plot_learning_curves, plot_metric_vs_columns, slug
from reports.stale import stale_reasons
from reports.tables import arm_keys, check_key, column_label, parse_pivot, pivot_metric
from reports.tasks import metric_view, task_view
from runners.core.atomic_write import atomic_write, remove_orphans
from runners.core.job_lock import report_lock
from runners.core.record import RunRecord

__all__ = [
    "METRICS",
    "left_out_reasons",
    "render_results",
    "write_records",
    "write_results",
]

#: Keys that define a comparable setting: runs differing here never share a table.
SETTING_KEYS = ("task", "data", "backbone", "epochs")
#: Metrics a table can show (columns of the runs table).
METRICS = ("top1", "top5", "loss", "best_top1", "best_top5", *DETECTION_METRICS)
#: Reasons a run is left out, in the order the summary counts them.
LEFT_OUT = ("failed", "diverged", "pruned", "running", "stale")


def left_out_reasons(
    runs: pd.DataFrame, include_stale: bool = False, stale: pd.Series | None = None
) -> pd.Series:
    """Why each run is left out of the tables (its status, or ``stale``), ``""`` if it is used.

    Stale runs (:mod:`reports.stale`; ``stale`` if already computed) are left out unless
    ``include_stale``; the code-version rule looks at every record of a study, finished or not.
    """
    reasons = pd.Series("", index=runs.index, dtype=object)
    stale = stale_reasons(runs) if stale is None else stale
    not_done = runs["status"] != "completed"
    reasons[not_done] = runs.loc[not_done, "status"]
    if not include_stale:
        reasons[(~not_done) & (stale != "")] = "stale"
    return reasons


def _escape(text: object) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _display(path: str, root: Path | None) -> str:
    if root is not None:
        try:
            return str(Path(path).relative_to(root)) or "."
        except ValueError:
            pass
    return path


def _section_metrics(group: pd.DataFrame, metrics: Sequence[str] | None, task: object) -> list:
    present = [m for m in (metrics or ()) if group[m].notna().any()]
    if present:
        return present
    defaults = task_view(task).shown
    return [m for m in defaults if group[m].notna().any()] or list(defaults[:1])


def _markdown(table: pd.DataFrame, index: bool = True) -> str:
    return table.to_markdown(index=index, disable_numparse=True)


def render_results(
    runs: pd.DataFrame,
    *,
    rows: str = "regularizer",
    columns: str = "batch",
    metrics: Sequence[str] | None = None,
    title: str = "Results",
    baseline: str | None = "regularizer=none",
    include_stale: bool = False,
    curves: pd.DataFrame | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    plots_link: str = "plots",
    root: str | os.PathLike[str] | None = None,
    confidence: float = 0.95,
    unreadable: Sequence[tuple[os.PathLike[str] | str, str]] = (),
) -> str:
    """The markdown text of RESULTS.md for the runs table of :func:`reports.collect.runs_table`.

    Args:
        rows, columns: the pivot's keys (columns of the runs table).
        metrics: metrics to tabulate; ``None`` (or none present) -> the task's defaults.
        baseline: ``KEY=VALUE`` naming the arm deltas are taken against; ``None``: no deltas.
        include_stale: tabulate runs of an older code version instead of leaving them out.
        curves: :func:`reports.collect.curves_table` of the same runs, for learning curves.
        plots_dir: where PNGs are written (no plots when ``None``); ``plots_link`` is how the
            markdown links to that folder.
        root: run directories are shown relative to it.
        unreadable: ``(file, reason)`` of run records that could not be read; listed as left
            out.
    """
    check_key(rows, COLUMNS, "rows")
    check_key(columns, COLUMNS, "columns")
    for metric in metrics or ():
        check_key(metric, METRICS, "metric")
    base = parse_baseline(baseline, rows, columns) if baseline else None
    root_path = Path(root) if root is not None else None

    stale = stale_reasons(runs)
    reasons = left_out_reasons(runs, include_stale, stale)
    used, left_out = runs[reasons == ""], runs[reasons != ""]
    counts = ", ".join(f"{(reasons == r).sum()} {r}" for r in LEFT_OUT if (reasons == r).any())
    if unreadable:
        counts = ", ".join(c for c in (counts, f"{len(unreadable)} unreadable") if c)
    lines = [f"# {title}", ""]
    lines.append(
        f"{len(runs) + len(unreadable)} run records: {len(used)} used, "
        f"{len(left_out) + len(unreadable)} left out"
        + (f" ({counts})" if counts else "")
        + ". Cells are mean ± sample std over seeds (n = runs)."
    )
    if include_stale and (stale[reasons == ""] != "").any():
        lines.append(
            f"{(stale[reasons == ''] != '').sum()} stale runs (older code) are included "
            "(--include-stale) and listed below."
        )
    lines.append("")
    if used.empty:
        lines += ["No completed runs yet.", ""]

    for setting, group in used.groupby(list(SETTING_KEYS), dropna=False, sort=True):
        described = ", ".join(f"{k}={v}" for k, v in zip(SETTING_KEYS, setting, strict=True))
        lines += [f"## {described}", ""]
        task = setting[0]
        plot_lines = []
        for metric in _section_metrics(group, metrics, task):
            name = metric_view(metric).title
            lines += [f"### {name}", "", _markdown(pivot_metric(group, rows, columns, metric)), ""]
            if base is not None:
                lines += [
                    f"### {name}: difference from {base}",
                    "",
                    _markdown(delta_table(group, rows, columns, metric, base, confidence)),
                    "",
                ]
            if plots_dir is not None and not plot_lines:  # the section's first metric only
                stem = slug(*setting, metric)
                vs = plot_metric_vs_columns(
                    group, rows, columns, metric,
                    Path(plots_dir) / f"{stem}-vs-{columns}.png", f"{described}: {metric}",
                )  # fmt: skip
                plot_lines.append(f"![{metric} vs {columns}]({plots_link}/{vs.name})")
                if curves is not None:
                    lc = plot_learning_curves(
                        group, curves, rows, columns, metric,
                        Path(plots_dir) / f"{stem}-curves.png", f"{described}: {metric} per epoch",
                    )  # fmt: skip
                    plot_lines.append(f"![{metric} learning curves]({plots_link}/{lc.name})")
        if plot_lines:
            lines += ["### Plots", "", *(f"{p}\n" for p in plot_lines)]

    if not used.empty:
        lines += _model_tables(used, rows, columns, base)

    if not left_out.empty or unreadable or (include_stale and (stale != "").any()):
        lines += ["## Runs left out", "", "| run | status | reason |", "|---|---|---|"]
        listed = runs[(reasons != "") | (stale != "")].copy()
        listed["_reason"] = reasons[listed.index]
        for i, run in listed.sort_values("job_dir", kind="stable").iterrows():
            why = run["_reason"] or "stale (included)"
            detail = stale[i] if why.startswith("stale") else run["error"]
            if run["status"] == "running" and not why.startswith("stale"):
                detail = _running_detail(run["job_dir"])
            lines.append(
                f"| `{_escape(_display(run['job_dir'], root_path))}` | {why} | {_escape(detail)} |"
            )
        for path, reason in sorted((str(p), r) for p, r in unreadable):
            lines.append(
                f"| `{_escape(_display(path, root_path))}` | unreadable | {_escape(reason)} |"
            )
        lines.append("")

    lines += [
        "## How to read this",
        "",
        "- Cells: mean ± sample standard deviation (ddof=1) over the runs of an arm, (n=runs).",
        f"- Differences: arm mean − baseline mean in the same setting and the same other pivot "
        f"value; [{confidence:.0%} confidence interval] from Welch's t with Welch-Satterthwaite "
        "degrees of freedom, two-sided p. **Bold**: the interval excludes zero. `no CI`: an arm "
        "has fewer than 2 runs.",
        "- Left out: failed, diverged, pruned and running runs; stale runs (a code version other "
        "than the newest run of the same study, newest by `started_at`).",
        "",
    ]
    return "\n".join(lines)


def _running_detail(job_dir: object) -> str:
    """Whether a ``running`` record's job is alive in another process or was interrupted."""
    from runners.core.job_lock import is_locked

    if not isinstance(job_dir, str) or not Path(job_dir).is_dir():
        return ""
    if is_locked(job_dir):
        return "running in another process now"
    return "interrupted (no process holds it): the same command resumes it"


def _model_tables(used: pd.DataFrame, rows: str, columns: str, base: Baseline | None) -> list:
    key = base.key if base is not None else rows
    other = columns if key == rows else rows
    base = base or Baseline(key, "\0")  # no baseline: no deltas
    keys = ["task", "data", "epochs", *arm_keys([other])]
    lines = ["## Models", ""]
    for values, group in used.groupby(keys, dropna=False, sort=True):
        other_value = tuple(values[3:]) if len(values) > 4 else values[3]
        described = ", ".join(f"{k}={v}" for k, v in zip(keys[:3], values[:3], strict=True))
        lines += [
            f"### {described}, {column_label(other, other_value)}",
            "",
            _markdown(model_table(group, base, values[0]), index=False),
            "",
        ]
    return lines


def write_records(
    records: Sequence[RunRecord],
    *,
    out: str | os.PathLike[str],
    rows: str = "regularizer",
    columns: str = "batch",
    pivot: str | None = None,
    metrics: Sequence[str] | None = None,
    title: str = "Results",
    baseline: str | None = "regularizer=none",
    include_stale: bool = False,
    plots: bool = True,
    root: str | os.PathLike[str] | None = None,
    confidence: float = 0.95,
    unreadable: Sequence[tuple[os.PathLike[str] | str, str]] = (),
) -> Path:
    """Write RESULTS.md (and ``plots/`` beside it) for already loaded records; returns ``out``.

    ``pivot="ROWS,COLUMNS"`` overrides ``rows`` and ``columns``. Other arguments: see
    :func:`render_results`.
    """
    if pivot:
        rows, columns = parse_pivot(pivot, COLUMNS)
    target = Path(out)
    runs = runs_table(records)
    # Writers of one study directory take turns; the one writing may remove what a killed
    # writer left (live writers hold the lock, so nothing of theirs is touched).
    with report_lock(target.parent):
        remove_orphans(target.parent)
        remove_orphans(target.parent / "plots")
        text = render_results(
            runs,
            rows=rows,
            columns=columns,
            metrics=metrics,
            title=title,
            baseline=baseline,
            include_stale=include_stale,
            curves=curves_table(records) if plots else None,
            plots_dir=target.parent / "plots" if plots else None,
            root=root,
            confidence=confidence,
            unreadable=unreadable,
        )
        atomic_write(target, text)
    return target


def write_results(
    paths: Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    rows: str = "regularizer",
    columns: str = "batch",
    pivot: str | None = None,
    metrics: Sequence[str] | None = None,
    title: str = "Results",
    baseline: str | None = "regularizer=none",
    include_stale: bool = False,
    plots: bool = True,
    confidence: float = 0.95,
) -> Path:
    """Collect the records under ``paths`` (recursively) and write RESULTS.md to ``out``.

    The entry point of the CLI, the multirun callback and the Optuna sweeper. Run directories
    are shown relative to the first path. A record that cannot be read is listed under "Runs
    left out" as ``unreadable``, with the reason. Returns ``out``.
    """
    paths = list(paths)
    first = Path(paths[0]) if paths else None
    root = None if first is None else (first if first.is_dir() else first.parent)
    unreadable: list[tuple[Path, str]] = []
    return write_records(
        # epochs feed only the learning curves
        load_records(paths, epochs=plots, unreadable=unreadable),
        out=out,
        rows=rows,
        columns=columns,
        pivot=pivot,
        metrics=metrics,
        title=title,
        baseline=baseline,
        include_stale=include_stale,
        plots=plots,
        root=root,
        confidence=confidence,
        unreadable=unreadable,
    )
