"""Every comparison a report makes, computed once: RESULTS.md's tables, its Findings and
``results.csv`` all read the same :class:`MetricAnalysis` values, so they cannot disagree.

A *setting* (:data:`SETTING_KEYS`) is what must be equal for runs to be compared. Per setting and
metric: the differences from the baseline (one Holm family, :mod:`reports.deltas`) and the
interactions with the other pivot key (another family, :mod:`reports.interaction_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from reports.collect import GAP_METRICS
from reports.deltas import Baseline, DeltaCell, delta_cells
from reports.interaction_table import InteractionCell, interaction_cells
from reports.options import ReportOptions
from reports.tasks import task_view

__all__ = [
    "SETTING_KEYS",
    "MetricAnalysis",
    "analyse",
    "describe_setting",
    "family_size",
    "gap_metrics",
    "section_metrics",
]

#: Keys that define a comparable setting: runs differing here never share a table.
SETTING_KEYS = ("task", "data", "backbone", "epochs")


@dataclass(frozen=True)
class MetricAnalysis:
    """One metric of one setting: its runs and both families of comparisons (empty lists
    without a baseline)."""

    setting: tuple
    metric: str
    runs: pd.DataFrame
    deltas: list[DeltaCell]
    interactions: list[InteractionCell]
    #: Whether the arms are compared (deltas, interactions, Findings); the generalization gap
    #: (:data:`reports.collect.GAP_METRICS`) is shown beside the metrics, cells only.
    compared: bool = True

    @property
    def described(self) -> str:
        return describe_setting(self.setting)

    @property
    def delta_family(self) -> int:
        """The differences' family size m: the comparisons with a p-value (Holm's m)."""
        return family_size(self.deltas)

    @property
    def interaction_family(self) -> int:
        """The interactions' family size m."""
        return family_size(self.interactions)


def family_size(cells: Sequence[DeltaCell | InteractionCell]) -> int:
    """How many comparisons of a family have a p-value (the m of its Holm adjustment)."""
    return sum(1 for c in cells if c.delta is not None and c.delta.p is not None)


def describe_setting(setting: tuple) -> str:
    """``task=classify, data=synthetic, backbone=tinyresnet, epochs=3``."""
    return ", ".join(f"{k}={v}" for k, v in zip(SETTING_KEYS, setting, strict=True))


def section_metrics(group: pd.DataFrame, metrics: Sequence[str] | None, task: object) -> list:
    """The metrics a setting's section shows: the asked ones it recorded, else its task's."""
    present = [m for m in (metrics or ()) if group[m].notna().any()]
    if present:
        return present
    defaults = task_view(task).shown
    return [m for m in defaults if group[m].notna().any()] or list(defaults[:1])


def analyse(
    used: pd.DataFrame, options: ReportOptions, base: Baseline | None
) -> list[MetricAnalysis]:
    """Per setting (sorted) and per metric (in the order shown), every comparison."""
    out = []
    for setting, group in used.groupby(list(SETTING_KEYS), dropna=False, sort=True):
        for metric in section_metrics(group, options.metrics, setting[0]):
            deltas: list[DeltaCell] = []
            interactions: list[InteractionCell] = []
            if base is not None:
                pivot = options.pivot(metric)
                deltas = delta_cells(group, pivot, base, options.confidence)
                interactions = interaction_cells(group, pivot, base, options.confidence)
            out.append(MetricAnalysis(setting, metric, group, deltas, interactions))
        out += [
            MetricAnalysis(setting, gap, group, [], [], compared=False)
            for gap in gap_metrics(group, options.metrics)
        ]
    return out


def gap_metrics(group: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """The generalization gap's metrics recorded by a setting's runs and not already asked for
    as compared metrics: shown as cells (mean ± std) after the setting's metrics."""
    return [m for m in GAP_METRICS if m not in (metrics or ()) and group[m].notna().any()]
