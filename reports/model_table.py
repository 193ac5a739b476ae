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
from reports.tables import arm_keys, row_order
from reports.tasks import metric_view, task_view

__all__ = ["model_table"]


def _mean(values: pd.Series) -> float:
    array = values.to_numpy(dtype=float, na_value=math.nan)
    finite = array[~np.isnan(array)]
    return float(finite.mean()) if finite.size else math.nan


def _points(value: float, base: float | None) -> str:
    text = f"{value:.1f}"
    if base is None or math.isnan(value) or math.isnan(base):
        return text
    diff = round(value, 1) - round(base, 1)
    return f"{text} **({'=' if abs(diff) < 0.05 else f'{diff:+.1f}'})**"


def _percent(value: float, base: float | None, text: str) -> str:
    if base is None or math.isnan(value) or math.isnan(base) or base == 0:
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
    metrics = [(metric_view(m).header, m) for m in task_view(task).model_columns]
    key = baseline.key
    keys = arm_keys([key])
    runs = runs[
        list(dict.fromkeys(["backbone", *keys, "params", "flops", *(c for _, c in metrics)]))
    ]
    lines = []
    for backbone in sorted(runs["backbone"].dropna().unique()):
        mine = runs[runs["backbone"] == backbone]
        arms = {}
        for value, group in mine.groupby(keys, dropna=True, sort=False):
            arms[value if len(keys) > 1 else value[0]] = group
        order = row_order(list(arms))
        base_value = next((a for a in order if baseline.matches(a)), None)
        order = ([base_value] if base_value is not None else []) + [
            a for a in order if a != base_value
        ]
        base = arms.get(base_value) if base_value is not None else None
        for arm in order:
            group = arms[arm]
            is_base = arm == base_value
            label = arm[0] if isinstance(arm, tuple) else arm
            name = (
                f"{backbone} + {key}={label}" if key != "regularizer" else f"{backbone} + {label}"
            )
            row = {"Model": name if is_base else f"**{name}**"}
            params, flops = _mean(group["params"]), _mean(group["flops"])
            ref = None if is_base or base is None else base
            row["#Parameter"] = (
                "-"
                if math.isnan(params)
                else _percent(
                    params, None if ref is None else _mean(ref["params"]), f"{params / 1e6:.2f}M"
                )
            )
            row["BFLOPs"] = (
                "-"
                if math.isnan(flops)
                else _percent(
                    flops, None if ref is None else _mean(ref["flops"]), f"{flops / 1e9:.2f}"
                )
            )
            for header, column in metrics:
                value = _mean(group[column])
                row[header] = (
                    "–"
                    if math.isnan(value)
                    else _points(value, None if ref is None else _mean(ref[column]))
                )
            row["n"] = str(len(group))
            lines.append(row)
    columns = ["Model", "#Parameter", "BFLOPs", *(h for h, _ in metrics), "n"]
    return pd.DataFrame(lines, columns=columns)
