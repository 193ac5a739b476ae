"""The model table, laid out like the CSPNet README's "ImageNet → Big Models" table.

``| Model | #Parameter | BFLOPs | Top-1 | Top-5 | n |`` (detection: ``AP | AP50 | AP75 | APS |
APM | APL``); each arm's values are means over its runs, and every arm but the baseline carries
its delta in bold, as CSPNet prints it: ``20.50M **(-8%)**``, ``77.9 **(+0.1)**``, ``**(=)**``
when the rounded difference is zero. Differences from CSPNet: #Parameter counts every parameter
(CSPNet counts conv weights only) and BFLOPs are ``torch.utils.flop_counter``'s FLOPs (2 x MAC,
as Darknet's) at the run's input size; ``n`` (runs averaged) is added.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.deltas import Baseline
from reports.tables import arm_keys, row_label, row_order
from reports.tasks import metric_view, task_view

__all__ = ["model_table"]


def _mean(values: pd.Series) -> float:
    array = values.to_numpy(dtype=float, na_value=math.nan)
    finite = array[~np.isnan(array)]
    return float(finite.mean()) if finite.size else math.nan


def _points(value: float, base: float | None) -> str:
    """``77.9 **(+0.1)**``: a metric (one decimal) and its difference from ``base`` in points,
    that of the printed values (``**(=)**`` when zero); ``–`` when no run has the metric."""
    if math.isnan(value):
        return "–"
    text = f"{value:.1f}"
    if base is None or math.isnan(base):
        return text
    diff = round(value, 1) - round(base, 1)
    return f"{text} **({'=' if abs(diff) < 0.05 else f'{diff:+.1f}'})**"


def _percent(value: float, base: float | None, scale: float, unit: str = "") -> str:
    """``20.50M **(-8%)**``: ``value / scale`` and its change from ``base`` in percent; ``-``
    when not recorded."""
    if math.isnan(value):
        return "-"
    text = f"{value / scale:.2f}{unit}"
    if base is None or math.isnan(base) or base == 0:
        return text
    change = round(100 * (value - base) / base)
    return f"{text} **({'=' if change == 0 else f'{change:+d}%'})**"


def model_table(runs: pd.DataFrame, baseline: Baseline, task: str | None) -> pd.DataFrame:
    """One row per (backbone, arm) of ``runs`` (one setting), baseline first within a backbone.

    Args:
        runs: the used runs of one section (same task, data, epochs and the other pivot value).
        baseline: the arm whose row carries no delta; the others' deltas are against it.
        task: the runs' task, which decides the metric columns (:mod:`reports.tasks`).
    """
    metrics = task_view(task).model_columns
    keep = ["backbone", *arm_keys([baseline.key]), "params", "flops", *metrics]
    runs = runs[list(dict.fromkeys(keep))]
    lines = []
    for backbone in sorted(runs["backbone"].dropna().unique()):
        order, arms, base_value = _arms(runs[runs["backbone"] == backbone], baseline)
        base = arms.get(base_value) if base_value is not None else None
        for arm in order:
            is_base = arm == base_value
            name = _model_name(backbone, baseline.key, arm)
            ref = None if is_base or base is None else base
            row = {"Model": name if is_base else f"**{name}**"}
            lines.append(row | _model_values(arms[arm], ref, metrics))
    columns = ["Model", "#Parameter", "BFLOPs", *(metric_view(m).header for m in metrics), "n"]
    return pd.DataFrame(lines, columns=columns)


def _arms(runs: pd.DataFrame, baseline: Baseline) -> tuple[list, dict, object]:
    """The arms of one backbone's ``runs`` in table order (the baseline's first), each arm's
    runs, and the baseline's arm value (``None`` when it has no runs here)."""
    keys = arm_keys([baseline.key])
    arms = {}
    for value, group in runs.groupby(keys, dropna=True, sort=False):
        arms[value if len(keys) > 1 else value[0]] = group
    order = row_order(list(arms))
    base_value = next((a for a in order if baseline.matches(a)), None)
    if base_value is not None:
        order = [base_value, *(a for a in order if a != base_value)]
    return order, arms, base_value


def _model_name(backbone: object, key: str, arm: object) -> str:
    """``tinyresnet + dropblock``; ``tinyresnet + batch=64`` when the arms are not regularizers."""
    value = arm[0] if isinstance(arm, tuple) else arm
    return (
        f"{backbone} + {key}={value}"
        if key != "regularizer"
        else f"{backbone} + {row_label(key, value)}"
    )


def _model_values(group: pd.DataFrame, ref: pd.DataFrame | None, metrics: tuple) -> dict:
    """The size, FLOPs and ``metrics`` cells of one arm's row; deltas against ``ref``'s runs
    (``None``: the baseline's own row, or no baseline)."""

    def ref_mean(column: str) -> float | None:
        return None if ref is None else _mean(ref[column])

    row = {
        "#Parameter": _percent(_mean(group["params"]), ref_mean("params"), 1e6, "M"),
        "BFLOPs": _percent(_mean(group["flops"]), ref_mean("flops"), 1e9),
    }
    for metric in metrics:
        row[metric_view(metric).header] = _points(_mean(group[metric]), ref_mean(metric))
    return row | {"n": str(len(group))}
