"""Which cells get more seeds after a round, or why the rounds stop: a pure function of the
run records (the same records always give the same decision).

The comparisons are RESULTS.md's own (:func:`reports.analysis.analyse`, on the records of the
jobs launched so far), of the first metric each setting shows (``report.metrics[0]``, Top-1 in
the default study). A comparison is *open* when it does not survive Holm's adjustment and its
interval's half-width is above ``report.target_halfwidth`` (a side with fewer than two runs has
no interval: open; every seed giving the same difference: half-width 0). An open difference
needs seeds in its two cells (arm and baseline at that level), an open interaction in its four.
Those below ``report.max_seeds`` are brought to the same count, ``report.seeds_per_round``
above the largest among them, with the next seeds of the shared sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from reports.analysis import MetricAnalysis, analyse
from reports.deltas import Baseline
from reports.options import ReportOptions
from reports.results import left_out_reasons
from reports.stats import Delta
from reports.tables import arm_keys, column_label, column_values, row_label

__all__ = [
    "OpenComparison",
    "Plan",
    "SeedLimits",
    "comparisons_of",
    "halfwidth",
    "open_comparisons",
    "plan_round",
]

#: A cell of the analysis: (setting, row value, column value).
CellKey = tuple[tuple, object, object]


@dataclass(frozen=True)
class SeedLimits:
    """``report.target_halfwidth``, ``max_seeds``, ``max_jobs`` and ``seeds_per_round``."""

    target_halfwidth: float = 1.0
    max_seeds: int = 8
    max_jobs: int | None = None
    seeds_per_round: int = 1


@dataclass(frozen=True)
class OpenComparison:
    """A comparison that still needs seeds: in words, its half-width, the cells it reads."""

    text: str
    halfwidth: float
    cells: tuple[CellKey, ...]


@dataclass(frozen=True)
class Plan:
    """The next round (``add``: cell -> its new seeds), or why none: ``stopped`` is one of
    ``runners.core.seed_rounds.STOPS`` and ``reason`` says it in words."""

    add: dict[str, list[int]] = field(default_factory=dict)
    stopped: str = ""
    reason: str = ""
    open: list[str] = field(default_factory=list)


def halfwidth(delta: Delta) -> float:
    """The interval's half-width; 0 without spread, infinite when a side has < 2 runs."""
    if delta.low is not None and delta.high is not None:
        return (delta.high - delta.low) / 2
    return 0.0 if min(delta.n, delta.n_baseline) >= 2 else math.inf


def _is_open(delta: Delta | None, target: float) -> bool:
    return delta is not None and not delta.survives and halfwidth(delta) > target


def _baseline_value(analysis: MetricAnalysis, options: ReportOptions, base: Baseline) -> object:
    """The baseline's value among the runs' rows (or columns)."""
    runs = analysis.runs
    if base.key == options.rows:
        values = list(runs[options.rows].dropna().unique())
    else:
        values = column_values(runs, options.columns)
    return next((v for v in values if base.matches(v)), None)


def _text(what: str, delta: Delta, target: float, metric: str) -> str:
    width = halfwidth(delta)
    shown = "no interval" if math.isinf(width) else f"±{width:.3g}"
    return f"{what} ({metric}): {shown} > ±{target:g}, not significant (n = {delta.n})"


def comparisons_of(
    analysis: MetricAnalysis, options: ReportOptions, base: Baseline, target: float
) -> list[OpenComparison]:
    """The open differences and interactions of one analysis, with the cells each reads."""
    on_rows = base.key == options.rows
    bval = _baseline_value(analysis, options, base)

    def key(arm: object, level: object) -> CellKey:
        return (analysis.setting, *((arm, level) if on_rows else (level, arm)))

    out = []
    for cell in analysis.deltas:
        if _is_open(cell.delta, target):
            arm, level = (cell.row, cell.column) if on_rows else (cell.column, cell.row)
            label = f"{row_label(options.rows, cell.row)} at {column_label(options.columns, cell.column)}"
            text = _text(f"{label} vs {base}", cell.delta, target, analysis.metric)
            out.append(
                OpenComparison(text, halfwidth(cell.delta), (key(arm, level), key(bval, level)))
            )
    level_key = options.columns if on_rows else options.rows
    for cell in analysis.interactions:
        if _is_open(cell.delta, target):
            label = f"interaction {cell.arm}: {column_label(level_key, cell.low)} → {column_label(level_key, cell.high)}"
            cells = (
                key(cell.arm, cell.low),
                key(cell.arm, cell.high),
                key(bval, cell.low),
                key(bval, cell.high),
            )
            out.append(
                OpenComparison(
                    _text(label, cell.delta, target, analysis.metric), halfwidth(cell.delta), cells
                )
            )
    return out


def open_comparisons(
    runs: pd.DataFrame, options: ReportOptions, target: float
) -> tuple[str, list[OpenComparison]]:
    """The decision metric and the open comparisons of the runs table (as RESULTS.md tabulates
    it: stale and unfinished runs left out)."""
    base = options.checked_baseline()
    used = runs[left_out_reasons(runs, options.include_stale) == ""]
    analyses = analyse(used, options, base) if len(used) else []
    first: dict[tuple, MetricAnalysis] = {}
    for analysis in analyses:
        first.setdefault(analysis.setting, analysis)  # the first metric each setting shows
    metric = next(iter(first.values())).metric if first else (options.metrics or ["top1"])[0]
    if base is None:
        return metric, []
    found = [c for a in first.values() for c in comparisons_of(a, options, base, target)]
    return metric, found


def cell_of_run(row: pd.Series, setting_keys: Sequence[str], options: ReportOptions) -> CellKey:
    """The analysis cell a run of the runs table falls in."""
    ckeys = arm_keys([options.columns])
    column = tuple(row[k] for k in ckeys) if len(ckeys) > 1 else row[options.columns]
    return (tuple(row[k] for k in setting_keys), row[options.rows], column)


def plan_round(
    needing: set[str], counts: Mapping[str, int], sequence: Sequence[int], limits: SeedLimits,
    launched: int, *, metric: str = "top1", n_open: int = 0,
) -> Plan:  # fmt: skip
    """The next round for the cells ``needing`` seeds (``counts``: seeds each cell has;
    ``sequence``: the shared seed sequence, long enough for ``max_seeds``; ``launched``: jobs
    so far; ``n_open``: the open comparisons, for the reason)."""
    growable = sorted(c for c in needing if counts[c] < limits.max_seeds)
    if not needing:
        return Plan(
            stopped="settled",
            reason=f"every comparison is conclusive or within ±{limits.target_halfwidth:g} "
            f"points of {metric}",
        )
    if not growable:
        return Plan(
            stopped="max_seeds",
            reason=f"report.max_seeds={limits.max_seeds} reached in every cell that still needs "
            f"seeds ({n_open} comparison{'s' if n_open != 1 else ''} of {metric} still open)",
        )
    length = min(limits.max_seeds, max(counts[c] for c in growable) + limits.seeds_per_round)
    add = {c: list(sequence[counts[c] : length]) for c in growable}
    add = {c: seeds for c, seeds in add.items() if seeds}
    jobs = sum(len(seeds) for seeds in add.values())
    if limits.max_jobs is not None and launched + jobs > limits.max_jobs:
        return Plan(
            stopped="max_jobs",
            reason=f"the job budget report.max_jobs={limits.max_jobs}: the next round needs "
            f"{jobs} jobs, {limits.max_jobs - launched} are left",
        )
    return Plan(add=add)
