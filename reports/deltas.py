"""Deltas against the baseline: each arm minus the baseline arm of the same setting.

"Same setting" is the section (task, data, backbone, epoch budget) plus the other pivot key: with
``--pivot regularizer,batch --baseline regularizer=none``, ``dropblock`` at batch 64 (mini 16)
is compared with ``none`` at batch 64 (mini 16). Cells read ``+1.2 [-0.3, +2.7] p=0.09``: the
difference of means, its 95% Welch interval and two-sided p (:mod:`reports.stats`); a cell whose
interval excludes zero is bold.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.stats import Delta, welch_delta
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

__all__ = ["Baseline", "DeltaCell", "delta_cells", "delta_table", "format_delta", "parse_baseline"]


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


def format_delta(delta: Delta | None, digits: int = 1) -> str:
    """``+1.2 [-0.3, +2.7] p=0.09``; bold when the interval excludes zero; ``–`` when no data.

    ``digits``: decimals of the difference and its interval (1 for percentages).
    """
    if delta is None:
        return "–"
    if delta.low is None or delta.high is None or delta.p is None:
        return f"{_fmt(delta.diff, digits)} (n={delta.n} vs {delta.n_baseline}, no CI)"
    p = "p<0.001" if delta.p < 0.001 else f"p={delta.p:.3f}"
    text = f"{_fmt(delta.diff, digits)} [{_fmt(delta.low, digits)}, {_fmt(delta.high, digits)}] {p}"
    return f"**{text}**" if delta.significant else text


def delta_cells(
    runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline, confidence: float = 0.95
) -> list[DeltaCell]:
    """Every non-baseline cell of the pivot, compared with the baseline cell of its row/column."""
    rows, columns, metric = pivot.rows, pivot.columns, pivot.metric
    cells = cell_groups(runs, rows, columns, [metric])
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
                delta = welch_delta(arm[metric].tolist(), base[metric].tolist(), confidence)
            out.append(DeltaCell(r, c, delta))
    return out


def delta_table(
    runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline, confidence: float = 0.95
) -> pd.DataFrame:
    """The pivot's layout, each cell :func:`format_delta` of its comparison; baseline cells say so."""
    rows, columns = pivot.rows, pivot.columns
    row_values = row_order(list(runs[rows].dropna().unique()))
    col_values = column_values(runs, columns)
    table = pd.DataFrame("baseline", index=row_values, columns=range(len(col_values)), dtype=object)
    index = {c: j for j, c in enumerate(col_values)}
    digits = metric_view(pivot.metric).digits
    for cell in delta_cells(runs, pivot, baseline, confidence):
        table.loc[cell.row, index[cell.column]] = format_delta(cell.delta, digits)
    table.columns = [column_label(columns, c) for c in col_values]
    table.index = pd.Index([row_label(rows, r) for r in row_values], name=rows)
    return table
