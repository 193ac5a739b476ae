"""The interaction table: for each arm, how its difference from the baseline changes between two
levels of the other pivot key (:func:`reports.interaction.interaction`).

With ``--pivot regularizer,batch --baseline regularizer=none``, the row ``dropblock`` and the
column ``mini 8 → mini 64`` hold ``(dropblock − none) at mini 64 − (dropblock − none) at mini 8``:
positive when DropBlock helps more (or hurts less) with the larger mini-batch. Levels are taken in
the table's column order (smaller first); every pair of levels gets a column. The whole table is
one family, Holm-adjusted together.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from reports.deltas import Baseline, arm_values, format_delta
from reports.interaction import interaction
from reports.multiplicity import holm
from reports.stats import Delta
from reports.tables import (
    MetricPivot,
    cell_groups,
    column_label,
    column_values,
    row_label,
    row_order,
)
from reports.tasks import metric_view

__all__ = ["InteractionCell", "interaction_cells", "interaction_table", "level_pair_label"]


@dataclass(frozen=True)
class InteractionCell:
    """``(arm − baseline)`` at ``high`` minus at ``low``; ``low``/``high`` are levels of the
    pivot key that is not the baseline's."""

    arm: object
    low: object
    high: object
    delta: Delta | None


def _levels(runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline) -> tuple[list, list]:
    """(arms, levels): the baseline key's values and the other key's, each in table order."""
    rows = row_order(list(runs[pivot.rows].dropna().unique()))
    columns = column_values(runs, pivot.columns)
    return (rows, columns) if baseline.key == pivot.rows else (columns, rows)


def interaction_cells(
    runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline, confidence: float = 0.95
) -> list[InteractionCell]:
    """Every non-baseline arm and every pair of levels; empty with fewer than two levels."""
    cells = cell_groups(runs, pivot.rows, pivot.columns, [pivot.metric, "seed"])
    arms, levels = _levels(runs, pivot, baseline)
    base = next((a for a in arms if baseline.matches(a)), None)
    if base is None or len(levels) < 2:
        return []

    def values(arm: object, level: object) -> dict | list:
        key = (arm, level) if baseline.key == pivot.rows else (level, arm)
        found = arm_values(cells.get(key), pivot.metric)
        # Runs without unique seeds get keys no other cell has: never paired, so Welch's.
        return found if isinstance(found, dict) else {(key, i): v for i, v in enumerate(found)}

    out = []
    for arm in (a for a in arms if a != base):
        for low, high in combinations(levels, 2):
            delta = interaction(
                values(arm, high), values(base, high), values(arm, low), values(base, low),
                confidence,
            )  # fmt: skip
            out.append(InteractionCell(arm, low, high, delta))
    adjusted = holm([c.delta for c in out])
    return [InteractionCell(c.arm, c.low, c.high, d) for c, d in zip(out, adjusted, strict=True)]


def level_pair_label(key: str, low: object, high: object) -> str:
    """``batch 64 (mini 8) → batch 64 (mini 64)``."""
    return f"{column_label(key, low)} → {column_label(key, high)}"


def interaction_table(
    runs: pd.DataFrame, pivot: MetricPivot, baseline: Baseline, cells: list[InteractionCell]
) -> pd.DataFrame:
    """Arms x level pairs, each cell :func:`reports.deltas.format_delta` of its interaction."""
    level_key = pivot.columns if baseline.key == pivot.rows else pivot.rows
    pairs = list(dict.fromkeys((c.low, c.high) for c in cells))
    arms = list(dict.fromkeys(c.arm for c in cells))
    labels = [level_pair_label(level_key, low, high) for low, high in pairs]
    table = pd.DataFrame("–", index=arms, columns=labels, dtype=object)
    digits = metric_view(pivot.metric).digits
    tests = {c.delta.test for c in cells if c.delta is not None and c.delta.p is not None}
    for c in cells:
        label = labels[pairs.index((c.low, c.high))]
        table.loc[c.arm, label] = format_delta(c.delta, digits, mark_welch=len(tests) > 1)
    table.index = pd.Index([row_label(baseline.key, a) for a in arms], name=baseline.key)
    return table
