"""PNG plots linked from RESULTS.md: metric vs batch with error bars, and learning curves.

Drawn with matplotlib's object API on a bare ``Figure`` (Agg canvas): no pyplot, no global
backend switch, no display needed. Points and bands are the mean ± sample std (ddof=1) over the
runs of an arm, the same numbers as the tables.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from reports.tables import (
    MetricPivot,
    arm_keys,
    cell_groups,
    column_label,
    column_values,
    row_label,
    row_order,
)
from runners.core.atomic_write import atomic_write

__all__ = ["plot_learning_curves", "plot_metric_vs_columns"]


def _figure(**kwargs: object) -> Any:
    """A bare ``Figure`` on an Agg canvas (matplotlib imported here: it costs ~1 s)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    # Atomic like every result file: a reader never sees half a PNG (runners.core.atomic_write).
    return atomic_write(
        path, lambda out: fig.savefig(out, format="png", dpi=100, metadata={"Software": None})
    )


def _x(value: object) -> float | None:
    raw = value[0] if isinstance(value, tuple) else value
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def plot_metric_vs_columns(
    runs: pd.DataFrame, pivot: MetricPivot, path: str | os.PathLike[str], title: str
) -> Path:
    """One line per ``rows`` value: ``metric`` against the ``columns`` value, std error bars.

    A numeric column (batch) is drawn on a log2 axis labelled with its (mini-)batch; any other
    column is drawn at evenly spaced positions.
    """
    rows, columns, metric = pivot.rows, pivot.columns, pivot.metric
    col_values = column_values(runs, columns)
    numeric = all(_x(c) is not None for c in col_values)
    positions = {c: (_x(c) if numeric else float(j)) for j, c in enumerate(col_values)}
    cells = cell_groups(runs, rows, columns, [metric, "job_dir"])
    fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for r in row_order(list(runs[rows].dropna().unique())):
        xs, ys, es = [], [], []
        for c in col_values:
            group = cells.get((r, c))
            if group is None:
                continue
            values = group[metric].astype(float).dropna()
            if values.empty:
                continue
            xs.append(positions[c])
            ys.append(values.mean())
            es.append(values.std() if len(values) > 1 else 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=str(row_label(rows, r)))
    if numeric and col_values and min(positions.values()) > 0:
        ax.set_xscale("log", base=2)
    ax.set_xticks([positions[c] for c in col_values])
    ax.set_xticklabels(
        [column_label(columns, c).replace(" (", "\n(") for c in col_values], fontsize=8
    )
    ax.minorticks_off()
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title=rows, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    pivot: MetricPivot,
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """One panel per ``columns`` value; in each, ``metric`` per epoch for every ``rows`` value.

    Lines are the mean over the arm's runs at each epoch, the band ± one sample std.
    """
    rows, columns, metric = pivot.rows, pivot.columns, pivot.metric
    col_values = column_values(runs, columns)
    ckeys = arm_keys([columns])
    width = max(1, len(col_values))
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(min(4 * width, 16), 3.6))
    axes = fig.subplots(1, width, squeeze=False, sharey=True)[0]
    stats = None
    if metric in curves.columns:
        # One join and one groupby for the whole figure: (row, column, epoch) -> mean, std.
        arms = runs[["job_dir", rows, *ckeys]]
        joined = curves[["job_dir", "epoch", metric]].merge(arms, on="job_dir")
        stats = joined.groupby([rows, *ckeys, "epoch"])[metric].agg(["mean", "std"])
    for ax, c in zip(axes, col_values, strict=False):
        for j, r in enumerate(row_order(list(runs[rows].dropna().unique()))):
            key = (r, *c) if isinstance(c, tuple) else (r, c)
            try:
                arm = stats.loc[key].sort_index() if stats is not None else None
            except KeyError:
                arm = None
            if arm is None or arm.empty or arm["mean"].isna().all():
                continue
            std = arm["std"].fillna(0.0)
            color = f"C{j % 10}"
            ax.plot(arm.index, arm["mean"], marker=".", color=color, label=str(row_label(rows, r)))
            ax.fill_between(arm.index, arm["mean"] - std, arm["mean"] + std, color=color, alpha=0.2)
        ax.set_title(column_label(columns, c), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    handles, _labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(title=rows, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def slug(*parts: object) -> str:
    """A file-name-safe name from the parts (``classify-synthetic-tinyresnet-e3``)."""
    text = "-".join(
        str(p) for p in parts if p is not None and not (isinstance(p, float) and math.isnan(p))
    )
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
