"""The sections of RESULTS.md, in the order :func:`reports.results.render_results` joins them.

Each function returns the section's markdown lines (``[]`` when it has nothing to say): the
summary, one section per setting (pivots, differences, plots), the model tables, the runs left
out and how to read it all. docs/REPORTS.md describes what each holds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import pandas as pd

from reports.analysis import SETTING_KEYS, MetricAnalysis, describe_setting
from reports.deltas import Baseline, delta_table, family_note
from reports.interaction_table import interaction_table
from reports.model_table import model_table
from reports.options import ReportOptions
from reports.plots import plot_learning_curves, plot_metric_vs_columns, slug
from reports.tables import arm_keys, column_label, pivot_metric
from reports.tasks import metric_view
from runners.core.job_lock import is_locked

__all__ = [
    "LEFT_OUT",
    "SETTING_KEYS",
    "PlotTarget",
    "how_to_read",
    "left_out_section",
    "model_sections",
    "setting_sections",
    "summary_section",
]

#: Under each generalization-gap table.
GAP_NOTE = (
    "The gap is what a regularizer acts on: the final model, in eval mode, scored on training "
    "images (`task.train_eval_samples` of them, the same for every run) and on the validation "
    "set; positive = better on the training images (overfitting). Cells as above; shown, not "
    "tested."
)

#: Reasons a run is left out, in the order the summary counts them.
LEFT_OUT = ("failed", "diverged", "pruned", "running", "stale")


@dataclass(frozen=True)
class PlotTarget:
    """Where a report's PNGs go (``directory``), how the markdown links to that folder
    (``link``), and the learning curves to draw (``None``: none)."""

    directory: Path
    link: str
    curves: pd.DataFrame | None


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


def _markdown(table: pd.DataFrame, index: bool = True) -> str:
    return table.to_markdown(index=index, disable_numparse=True)


def summary_section(
    runs: pd.DataFrame,
    reasons: pd.Series,
    stale: pd.Series,
    unreadable: int,
    options: ReportOptions,
) -> list[str]:
    """The title and the count of records: used, left out per reason (``unreadable`` of them
    could not be read), stale runs included."""
    used = reasons == ""
    counts = ", ".join(f"{(reasons == r).sum()} {r}" for r in LEFT_OUT if (reasons == r).any())
    if unreadable:
        counts = ", ".join(c for c in (counts, f"{unreadable} unreadable") if c)
    lines = [f"# {options.title}", ""]
    lines.append(
        f"{len(runs) + unreadable} run records: {used.sum()} used, "
        f"{(~used).sum() + unreadable} left out"
        + (f" ({counts})" if counts else "")
        + ". Cells are mean ± sample std over seeds (n = runs)."
    )
    if options.include_stale and (stale[used] != "").any():
        lines.append(
            f"{(stale[used] != '').sum()} stale runs (older code) are included "
            "(--include-stale) and listed below."
        )
    lines.append("")
    if not used.any():
        lines += ["No completed runs yet.", ""]
    return lines


def setting_sections(
    analyses: Sequence[MetricAnalysis],
    options: ReportOptions,
    base: Baseline | None,
    plots: PlotTarget | None,
) -> list[str]:
    """Per setting (:data:`SETTING_KEYS`), per metric: the pivot, the differences from ``base``
    and the interactions; then the plots of the setting's first metric (none when ``plots`` is
    ``None``)."""
    lines: list[str] = []
    for _setting, same in groupby(analyses, key=lambda a: a.setting):
        same = list(same)
        lines += [f"## {same[0].described}", ""]
        for analysis in same:
            if analysis.compared:
                lines += _metric_tables(analysis, options, base)
        lines += _gap_tables([a for a in same if not a.compared], options)
        if plots is not None:
            lines += _plot_lines(same[0], options, plots)
    return lines


def _metric_tables(
    analysis: MetricAnalysis, options: ReportOptions, base: Baseline | None
) -> list[str]:
    """One metric of one setting: its pivot, its differences from ``base`` and the
    interactions (when there is a baseline and two levels)."""
    name, group, metric = metric_view(analysis.metric).title, analysis.runs, analysis.metric
    table = pivot_metric(group, options.rows, options.columns, metric)
    lines = [f"### {name}", "", _markdown(table), ""]
    if base is None:
        return lines
    pivot = options.pivot(metric)
    deltas = delta_table(group, pivot, base, options.confidence, analysis.deltas)
    lines += [f"### {name}: difference from {base}", "", _markdown(deltas), ""]
    lines += [family_note([c.delta for c in analysis.deltas], "Differences"), ""]
    if not analysis.interactions:
        return lines
    level_key = pivot.columns if base.key == pivot.rows else pivot.rows
    return [
        *lines,
        f"### {name}: interaction with {level_key}",
        "",
        f"Each cell: (arm − {base.value}) at the larger {level_key} minus (arm − {base.value}) "
        "at the smaller; positive: the arm gains more from the larger level.",
        "",
        _markdown(interaction_table(group, pivot, base, analysis.interactions)),
        "",
        family_note([c.delta for c in analysis.interactions], "Interactions"),
        "",
    ]


def _gap_tables(analyses: Sequence[MetricAnalysis], options: ReportOptions) -> list[str]:
    """The generalization gap's pivots (cells only) under one heading and one note."""
    if not analyses:
        return []
    lines = ["### Generalization gap", ""]
    for analysis in analyses:
        table = pivot_metric(analysis.runs, options.rows, options.columns, analysis.metric)
        lines += [f"{metric_view(analysis.metric).title}:", "", _markdown(table), ""]
    return [*lines, GAP_NOTE, ""]


def _plot_lines(analysis: MetricAnalysis, options: ReportOptions, plots: PlotTarget) -> list[str]:
    """Draw the analysis' metric of its setting against the columns and, given curves, per
    epoch; the markdown that shows both (PNG names derived from the setting)."""
    group, setting, metric = analysis.runs, analysis.setting, analysis.metric
    stem, described = slug(*setting, metric), describe_setting(setting)
    pivot, columns = options.pivot(metric), options.columns
    vs = plot_metric_vs_columns(
        group, pivot, plots.directory / f"{stem}-vs-{columns}.png", f"{described}: {metric}"
    )
    links = [f"![{metric} vs {columns}]({plots.link}/{vs.name})"]
    if plots.curves is not None:
        lc = plot_learning_curves(
            group, plots.curves, pivot,
            plots.directory / f"{stem}-curves.png", f"{described}: {metric} per epoch",
        )  # fmt: skip
        links.append(f"![{metric} learning curves]({plots.link}/{lc.name})")
    return ["### Plots", "", *(f"{link}\n" for link in links)]


def model_sections(used: pd.DataFrame, rows: str, columns: str, base: Baseline | None) -> list:
    """The model tables (:mod:`reports.model_table`): one per task, data, epoch budget and
    value of the pivot key that is not the baseline's."""
    if used.empty:
        return []
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


def _running_detail(job_dir: object) -> str:
    """Whether a ``running`` record's job is alive in another process or was interrupted."""
    if not isinstance(job_dir, str) or not Path(job_dir).is_dir():
        return ""
    if is_locked(job_dir):
        return "running in another process now"
    return "interrupted (no process holds it): the same command resumes it"


def left_out_section(
    runs: pd.DataFrame,
    reasons: pd.Series,
    stale: pd.Series,
    unreadable: Sequence[tuple[os.PathLike[str] | str, str]],
    root: Path | None,
) -> list[str]:
    """Every run left out (``reasons``) or stale, and every record that could not be read,
    with why; run directories shown relative to ``root``."""
    listed = runs[(reasons != "") | (stale != "")].copy()
    if listed.empty and not unreadable:
        return []
    lines = ["## Runs left out", "", "| run | status | reason |", "|---|---|---|"]
    listed["_reason"] = reasons[listed.index]
    for i, run in listed.sort_values("job_dir", kind="stable").iterrows():
        why = run["_reason"] or "stale (included)"
        detail = stale[i] if why.startswith("stale") else run["error"]
        if run["status"] == "running" and not why.startswith("stale"):
            detail = _running_detail(run["job_dir"])
        lines.append(f"| `{_escape(_display(run['job_dir'], root))}` | {why} | {_escape(detail)} |")
    for path, reason in sorted((str(p), r) for p, r in unreadable):
        lines.append(f"| `{_escape(_display(path, root))}` | unreadable | {_escape(reason)} |")
    return [*lines, ""]


def how_to_read(confidence: float) -> list[str]:
    """The notes on cells, differences and left-out runs (the interval's ``confidence``)."""
    return [
        "## How to read this",
        "",
        "- Cells: mean ± sample standard deviation (ddof=1) over the runs of an arm, (n=runs).",
        "- Findings: each comparison in words: supported (clear after Holm's adjustment within "
        "its table), contradicted (a claim the interval rules out), inconclusive at n = k (with "
        "the smallest effect the seeds could detect at 80% power), untested.",
        f"- Differences: arm − baseline in the same setting and the same other pivot value; "
        f"[{confidence:.0%} confidence interval], two-sided p, p_adj (Holm within the table), "
        "d (Cohen's). Paired t over the seeds both arms ran when they share two or more (a seed "
        "gives every arm the same initialisation and data order), Welch's t otherwise; the line "
        "under each table says which. **Bold**: p_adj < 0.05. `no CI`: fewer than 2 runs a "
        "side, or no spread.",
        "- Interactions: (arm − baseline) at the larger level minus at the smaller, same numbers; "
        "its own Holm family.",
        "- Every number is also in results.csv beside this file.",
        "- Left out: failed, diverged, pruned and running runs; stale runs (a code version other "
        "than the newest run of the same study, newest by `started_at`).",
        "",
    ]
