"""Deltas against the baseline: each arm minus the baseline arm of the same setting.

"Same setting" is the section (task, data, backbone, epoch budget) plus the other pivot key: with
``--pivot regularizer,batch --baseline regularizer=none``, ``dropblock`` at batch 64 (mini 16)
is compared with ``none`` at batch 64 (mini 16). Cells read ``+1.2 [-0.3, +2.7] p=0.090
p_adj=0.180 d=+0.8``: the difference, its 95% interval, the two-sided p, the Holm-adjusted p
within the table (:mod:`reports.multiplicity`; the table is the family) and the effect size. The
test is paired over the seeds both cells ran when they share at least two, Welch's otherwise
(:mod:`reports.stats`); a cell that survives the adjustment is bold.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.multiplicity import holm
from reports.stats import WELCH, Delta, compare, welch_delta
from reports.tables import (
    MetricPivot,
    cell_groups,
    check_key,
    column_label,
    column_values,
    row_label,
    row_order,
)
from reports.tasks import metric_view

__all__ = [
    "Baseline",
    "DeltaCell",
    "arm_values",
    "delta_cells",
    "delta_table",
    "family_note",
    "format_delta",
    "parse_baseline",
]


@dataclass(frozen=True)
class Baseline:
    """The arm every other arm is compared with: ``key=value`` (``regularizer=none``)."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"

    def matches(self, value: object) -> bool:
        """Whether a table value is the baseline's (compared as text, so ``batch=64`` works)."""
        if isinstance(value, tuple):  # a (batch, mini_batch) column
            value = value[0]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value) == self.value


def parse_baseline(text: str, rows: str, columns: str) -> Baseline:
    """``"regularizer=none"`` -> :class:`Baseline`; its key must be one of the pivot's two."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ValueError(f"--baseline takes KEY=VALUE (e.g. regularizer=none), got {text!r}")
    check_key(key, [rows, columns], "--baseline (must be a --pivot key)")
    return Baseline(key, value)


@dataclass(frozen=True)
class DeltaCell:
    """One comparison: the arm's row and column values, and its :class:`Delta` (or None)."""

    row: object
    column: object
    delta: Delta | None


def _fmt(x: float, digits: int = 1) -> str:
    text = f"{x:+.{digits}f}"
    zero = f"{0:.{digits}f}"
    return f"±{zero}" if text in (f"+{zero}", f"-{zero}") else text


def _p(name: str, p: float) -> str:
    return f"{name}<0.001" if p < 0.001 else f"{name}={p:.3f}"


def format_delta(delta: Delta | None, digits: int = 1, mark_welch: bool = False) -> str:
    """``+1.2 [-0.3, +2.7] p=0.090 p_adj=0.180 d=+0.8``; bold when it survives the family's
    adjustment (or, never adjusted, when the interval excludes zero); ``–`` when no data.

    ``digits``: decimals of the difference and its interval (1 for percentages).
    ``mark_welch``: append ``(Welch)`` to a Welch comparison (a table that mixes tests).
    """
    if delta is None:
        return "–"
    if delta.low is None or delta.high is None or delta.p is None:
        return f"{_fmt(delta.diff, digits)} (n={delta.n} vs {delta.n_baseline}, no CI)"
    parts = [
        _fmt(delta.diff, digits),
        f"[{_fmt(delta.low, digits)}, {_fmt(delta.high, digits)}]",
        _p("p", delta.p),
    ]
    if delta.p_adjusted is not None:
        parts.append(_p("p_adj", delta.p_adjusted))
    if delta.effect_size is not None:
        parts.append(f"d={delta.effect_size:+.1f}")
    text = " ".join(parts)
    text = f"**{text}**" if delta.survives else text
    return f"{text} (Welch)" if mark_welch and delta.test == WELCH else text


def arm_values(group: pd.DataFrame | None, metric: str) -> dict[int, float] | list[float]:
    """A cell's metric by seed (``seed -> value``), or a plain list when seeds repeat or are
    missing (runs of several studies in one cell): such a cell can only be compared by Welch."""
    if group is None:
        return []
    values = group[metric].astype(float)
    if "seed" not in group or group["seed"].isna().any() or group["seed"].duplicated().any():
        return values.tolist()
    return dict(zip(group["seed"].astype(int), values, strict=True))


def compare_arms(
    arm: dict[int, float] | list[float], base: dict[int, float] | list[float], confidence: float
) -> Delta | None:
    """:func:`reports.stats.compare` for seed maps; Welch's t when either side is a list."""
    if isinstance(arm, dict) and isinstance(base, dict):
        return compare(arm, base, confidence)
    as_list = [list(side.values()) if isinstance(side, dict) else side for side in (arm, base)]
    return welch_delta(*as_list, confidence)


def family_note(deltas: list[Delta | None], what: str) -> str:
    """The line under a table: its family, the adjustment, the test(s) and what bold means."""
    tested = [d for d in deltas if d is not None and d.p is not None]
    if not tested:
        return f"_{what}: no comparison has two runs on each side yet, so none is tested._"
    tests = sorted({d.test for d in tested})
    how = (
        "paired t over the seeds both sides ran"
        if tests == ["paired t"]
        else "Welch t (the sides share fewer than two seeds)"
        if tests == ["Welch t"]
        else "paired t where the sides share seeds, Welch t where marked"
    )
    alpha = tested[0].alpha
    return (
        f"_{what}: one family of {len(tested)} comparisons, Holm-adjusted (p_adj); {how}; "
        f"d: Cohen's d (d_z when paired); **bold**: p_adj < {alpha:g}._"
    )


def delta_cells(
    runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline, confidence: float = 0.95
) -> list[DeltaCell]:
    """Every non-baseline cell of the pivot, compared with the baseline cell of its row/column;
    the cells are one family, Holm-adjusted together."""
    rows, columns, metric = pivot.rows, pivot.columns, pivot.metric
    cells = cell_groups(runs, rows, columns, [metric, "seed"])
    row_values = row_order(list(runs[rows].dropna().unique()))
    col_values = column_values(runs, columns)
    out = []
    for r in row_values:
        for c in col_values:
            if baseline.key == rows:
                if baseline.matches(r):
                    continue
                base = next((cells.get((b, c)) for b in row_values if baseline.matches(b)), None)
            else:
                if baseline.matches(c):
                    continue
                base = next((cells.get((r, b)) for b in col_values if baseline.matches(b)), None)
            arm = cells.get((r, c))
            delta = None
            if arm is not None and base is not None:
                delta = compare_arms(arm_values(arm, metric), arm_values(base, metric), confidence)
            out.append(DeltaCell(r, c, delta))
    adjusted = holm([cell.delta for cell in out])
    return [DeltaCell(cell.row, cell.column, d) for cell, d in zip(out, adjusted, strict=True)]


def delta_table(
    runs: pd.DataFrame,
    pivot: MetricPivot,
    baseline: Baseline,
    confidence: float = 0.95,
    cells: list[DeltaCell] | None = None,
) -> pd.DataFrame:
    """The pivot's layout, each cell :func:`format_delta` of its comparison; baseline cells say so.

    ``cells``: the comparisons, when the caller already has them (:func:`delta_cells`).
    """
    rows, columns = pivot.rows, pivot.columns
    row_values = row_order(list(runs[rows].dropna().unique()))
    col_values = column_values(runs, columns)
    table = pd.DataFrame("baseline", index=row_values, columns=range(len(col_values)), dtype=object)
    index = {c: j for j, c in enumerate(col_values)}
    digits = metric_view(pivot.metric).digits
    cells = delta_cells(runs, pivot, baseline, confidence) if cells is None else cells
    mixed = len({c.delta.test for c in cells if c.delta is not None and c.delta.p is not None}) > 1
    for cell in cells:
        table.loc[cell.row, index[cell.column]] = format_delta(cell.delta, digits, mixed)
    table.columns = [column_label(columns, c) for c in col_values]
    table.index = pd.Index([row_label(rows, r) for r in row_values], name=rows)
    return table
