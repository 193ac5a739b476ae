"""``results.csv`` beside RESULTS.md: every number the report shows, one tidy row each.

One row per cell (``kind=cell``: mean, sample std and n over seeds), per difference from the
baseline (``kind=delta``), per interaction (``kind=interaction``) and per published number
(``kind=published``: the published value as the estimate, its source in ``test``), with the estimate, its
interval, p, Holm-adjusted p, effect size, n, the test used, the family's size, the minimum
detectable effect and the verdict the Findings give. docs/REPORTS.md lists the columns;
``pandas.read_csv`` loads it as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from reports.analysis import SETTING_KEYS, MetricAnalysis
from reports.deltas import Baseline
from reports.findings import judge
from reports.interaction_table import level_pair_label
from reports.power import minimum_detectable_effect
from reports.published import Published, published_rows
from reports.stats import Delta
from reports.tables import cell_groups, column_label

__all__ = ["CSV_COLUMNS", "results_frame"]

CSV_COLUMNS = [
    "study", *SETTING_KEYS, "metric", "kind", "rows", "row", "columns", "column",
    "estimate", "low", "high", "std", "p", "p_adjusted", "effect_size", "n", "n_baseline",
    "test", "family_size", "mde", "verdict",
]  # fmt: skip


def _delta_fields(delta: Delta | None, family_size: int) -> dict[str, Any]:
    if delta is None:
        return {"verdict": "untested"}
    return {
        "estimate": delta.diff, "low": delta.low, "high": delta.high, "p": delta.p,
        "p_adjusted": delta.p_adjusted, "effect_size": delta.effect_size, "n": delta.n,
        "n_baseline": delta.n_baseline, "test": delta.test, "family_size": family_size,
        "mde": minimum_detectable_effect(delta, family_size),
        "verdict": judge(delta, family_size).word,
    }  # fmt: skip


def _rows(analysis: MetricAnalysis, pivot_keys: tuple[str, str], base: Baseline | None) -> Iterator:
    rows, columns = pivot_keys
    common = {
        "study": ",".join(sorted(map(str, analysis.runs["study"].dropna().unique()))),
        **dict(zip(SETTING_KEYS, analysis.setting, strict=True)),
        "metric": analysis.metric, "rows": rows, "columns": columns,
    }  # fmt: skip
    for (row, column), group in cell_groups(
        analysis.runs, rows, columns, [analysis.metric]
    ).items():
        values = group[analysis.metric].astype(float).dropna()
        yield {
            **common, "kind": "cell", "row": row, "column": column_label(columns, column),
            "estimate": values.mean(), "std": values.std(), "n": len(values),
        }  # fmt: skip
    family = analysis.delta_family
    for cell in analysis.deltas:
        yield {
            **common, "kind": "delta", "row": cell.row,
            "column": column_label(columns, cell.column), **_delta_fields(cell.delta, family),
        }  # fmt: skip
    level_key = columns if base is None or base.key == rows else rows
    family = analysis.interaction_family
    for cell in analysis.interactions:
        yield {
            **common, "kind": "interaction", "row": cell.arm,
            "column": level_pair_label(level_key, cell.low, cell.high),
            **_delta_fields(cell.delta, family),
        }  # fmt: skip


def results_frame(
    analyses: Sequence[MetricAnalysis],
    pivot_keys: tuple[str, str],
    base: Baseline | None,
    published: Sequence[Published] = (),
) -> pd.DataFrame:
    """The tidy table of every cell, delta and interaction (:data:`CSV_COLUMNS`), then one
    ``published`` row per published number (:mod:`reports.published`)."""
    records = [row for a in analyses for row in _rows(a, pivot_keys, base)]
    studies = {str(s) for a in analyses for s in a.runs["study"].dropna().unique()}
    records += published_rows(published, ",".join(sorted(studies)), pivot_keys)
    return pd.DataFrame.from_records(records, columns=CSV_COLUMNS)
