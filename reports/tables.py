"""Pivot tables of a metric over seeds: rows x columns, cells ``mean ± std (n=…)``.

The standard deviation is the sample one (ddof=1), over the seeds of a cell; a cell with one run
shows only its value and n=1.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["format_cell", "pivot_metric", "row_order"]

#: Regularizers in the order the seed's question reads them; others follow alphabetically.
CANONICAL_ORDER = ("none", "dropout", "dropblock", "cbn", "dropblock_cbn")


def format_cell(mean: float, std: float, n: int, digits: int = 1) -> str:
    """``71.3 ± 1.2 (n=3)``; one decimal, as the CSPNet and DropBlock tables print accuracy."""
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if n == 1 or std is None or math.isnan(std):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})"


def row_order(values: list) -> list:
    """Canonical regularizer order first, then the rest sorted."""
    known = [v for v in CANONICAL_ORDER if v in values]
    return known + sorted(v for v in values if v not in CANONICAL_ORDER)


def pivot_metric(runs: pd.DataFrame, rows: str, columns: str, metric: str) -> pd.DataFrame:
    """A table of formatted cells: index = values of ``rows``, columns = values of ``columns``.

    When the columns are ``batch``, each header also shows the mini-batch(es) BatchNorm saw.
    """
    stats = runs.groupby([rows, columns], dropna=False)[metric].agg(["mean", "std", "count"])
    row_values = row_order(list(runs[rows].dropna().unique()))
    col_values = sorted(runs[columns].dropna().unique())
    table = pd.DataFrame(index=row_values, columns=col_values, dtype=object)
    for r in row_values:
        for c in col_values:
            if (r, c) in stats.index:
                s = stats.loc[(r, c)]
                table.loc[r, c] = format_cell(s["mean"], s["std"], int(s["count"]))
            else:
                table.loc[r, c] = "–"
    if columns == "batch" and "mini_batch" in runs:
        labels = {}
        for c in col_values:
            minis = sorted(runs.loc[runs["batch"] == c, "mini_batch"].dropna().unique())
            labels[c] = f"batch {c} (mini {'/'.join(str(int(m)) for m in minis)})"
        table = table.rename(columns=labels)
    else:
        table = table.rename(columns={c: f"{columns} {c}" for c in col_values})
    table.index.name = rows
    return table
