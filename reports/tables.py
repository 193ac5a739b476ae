"""Pivot tables of a metric over seeds: rows x columns, cells ``mean ± std (n=…)``.

The standard deviation is the sample one (ddof=1), over the seeds of a cell; a cell with one run
shows only its value and n=1. When the columns are ``batch``, every (batch, mini_batch) pair is
its own column, ``batch 64 (mini 16)``: the seed's argument is about what BatchNorm sees.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from regularizers.registry import label as regularizer_label
from regularizers.registry import names as regularizer_names
from reports.tasks import metric_view

__all__ = [
    "MetricPivot",
    "arm_keys",
    "column_label",
    "format_cell",
    "level_matches",
    "parse_pivot",
    "pivot_metric",
    "row_label",
    "row_order",
]


@dataclass(frozen=True)
class MetricPivot:
    """One metric of the runs laid out as a table: ``rows`` x ``columns`` (runs-table keys)."""

    rows: str
    columns: str
    metric: str


def format_cell(mean: float, std: float, n: int, digits: int = 1) -> str:
    """``71.3 ± 1.2 (n=3)``; one decimal, as the CSPNet and DropBlock tables print accuracy."""
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if n == 1 or std is None or math.isnan(std):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})"


def parse_pivot(pivot: str, available: Sequence[str]) -> tuple[str, str]:
    """``"regularizer,batch"`` -> ``("regularizer", "batch")``, each a column of the runs table."""
    keys = [k.strip() for k in pivot.split(",")]
    if len(keys) != 2 or not all(keys) or keys[0] == keys[1]:
        raise ValueError(f"--pivot takes two different keys, ROWS,COLUMNS, got {pivot!r}")
    for key in keys:
        check_key(key, available, "--pivot")
    return keys[0], keys[1]


def check_key(key: str, available: Sequence[str], what: str) -> None:
    """Raise a ValueError naming ``what`` and the keys that exist when ``key`` is not one."""
    if key not in available:
        raise ValueError(f"{what}: unknown key {key!r}; keys: {', '.join(available)}")


def arm_keys(keys: Sequence[str]) -> list[str]:
    """The grouping keys for ``keys``: ``batch`` brings ``mini_batch`` along."""
    out: list[str] = []
    for key in keys:
        out.append(key)
        if key == "batch":
            out.append("mini_batch")
    return out


def _sort_key(value: object) -> tuple:
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def row_order(values: list) -> list:
    """Registered regularizers first, in the registry's order (none, dropout, dropblock, cbn,
    dropblock_cbn: as the seed's question reads them), then the rest sorted (numbers
    numerically)."""
    order = regularizer_names()
    known = [v for v in order if v in values]
    return known + sorted((v for v in values if v not in order), key=_sort_key)


def row_label(rows: str, value: object) -> object:
    """How a row is shown: a regularizer by its registry label, any other value as it is."""
    return regularizer_label(value) if rows == "regularizer" else value


def column_values(runs: pd.DataFrame, columns: str) -> list:
    """The table's columns in order: values, or (batch, mini_batch) pairs when ``batch``."""
    keys = arm_keys([columns])
    present = runs[keys].dropna().drop_duplicates()
    values = [tuple(v) if len(keys) > 1 else v[0] for v in present.itertuples(index=False)]
    return sorted(
        values,
        key=lambda v: tuple(_sort_key(x) for x in v) if isinstance(v, tuple) else _sort_key(v),
    )


def column_label(columns: str, value: object) -> str:
    """``batch 64 (mini 16)`` for a (batch, mini_batch) pair, else ``<key> <value>``."""
    if columns == "batch" and isinstance(value, tuple):
        return f"batch {int(value[0])} (mini {int(value[1])})"
    return f"{columns} {value}"


def level_matches(at: str | None, columns: str, level: object) -> bool:
    """Whether a column ``level`` is the one ``at`` (``KEY=VALUE``, ``None``: any) names; a
    (batch, mini_batch) pair matches ``batch=...`` or ``mini_batch=...``."""
    if at is None:
        return True
    key, _, value = at.partition("=")
    if isinstance(level, tuple):  # (batch, mini_batch)
        level = dict(zip(("batch", "mini_batch"), level, strict=False)).get(key.strip())
    elif key.strip() != columns:
        return False
    return str(level) == value.strip()


def cell_groups(
    runs: pd.DataFrame, rows: str, columns: str, values: Sequence[str] = ()
) -> dict[tuple, pd.DataFrame]:
    """``{(row value, column value): runs of that cell}``; column values as in :func:`column_values`.

    Only the grouping keys and the ``values`` columns are kept (slicing every column of a wide
    runs table per cell is what made 10,000 records slow).
    """
    ckeys = arm_keys([columns])
    keep = list(dict.fromkeys([rows, *ckeys, *values]))
    out = {}
    for key, group in runs[keep].groupby([rows, *ckeys], dropna=True, sort=False):
        col = tuple(key[1:]) if len(ckeys) > 1 else key[1]
        out[(key[0], col)] = group
    return out


def pivot_metric(runs: pd.DataFrame, rows: str, columns: str, metric: str) -> pd.DataFrame:
    """A table of formatted cells: index = values of ``rows``, columns = values of ``columns``."""
    row_values = row_order(list(runs[rows].dropna().unique()))
    col_values = column_values(runs, columns)
    cells = cell_groups(runs, rows, columns, [metric])
    table = pd.DataFrame(index=row_values, columns=range(len(col_values)), dtype=object)
    for r in row_values:
        for j, c in enumerate(col_values):
            group = cells.get((r, c))
            if group is None:
                table.loc[r, j] = "–"
                continue
            values = group[metric].astype(float).dropna()
            table.loc[r, j] = format_cell(
                values.mean(), values.std(), len(values), metric_view(metric).digits
            )
    table.columns = [column_label(columns, c) for c in col_values]
    table.index = pd.Index([row_label(rows, r) for r in row_values], name=rows)
    return table
