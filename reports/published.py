"""Numbers published under another budget (``report.published``), shown beside ours, never tested.

An entry: ``row`` (a value of the report's rows key, e.g. the regularizer ``dropblock_cbn``),
optionally ``column`` (``KEY=VALUE`` naming the column level, e.g. ``mini_batch=32``; absent:
every level), ``metric``, ``value`` (in metric points), ``source`` (where the number comes from)
and ``budget`` (what it was trained with: data, schedule, recipe). RESULTS.md's "Published
(different budget)" table puts each beside our mean at the matching cell, with the mean's t
interval over seeds (``not run`` when we have no such cell); results.csv has one row of kind
``published`` per entry (docs/REPORTS.md). A different budget (ImageNet, a full schedule) makes
the two incomparable as a test: the numbers are there for orientation only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from reports.stats import one_sample_delta
from reports.tables import cell_groups, column_label, level_matches, row_label
from reports.tasks import metric_view

if TYPE_CHECKING:  # reports.options imports this module, and reports.analysis imports it
    from reports.analysis import MetricAnalysis

__all__ = [
    "Published",
    "parse_published",
    "published_in_records",
    "published_rows",
    "published_section",
]

log = logging.getLogger(__name__)

REQUIRED = ("row", "metric", "value", "source", "budget")
TEXT_KEYS = ("row", "metric", "source", "budget")


@dataclass(frozen=True)
class Published:
    """One published number (module docstring)."""

    row: str
    metric: str
    value: float
    source: str
    budget: str
    column: str | None = None


@dataclass(frozen=True)
class Ours:
    """Our cell beside a published number: where, mean, its interval (``None``: no spread or one
    run) and the runs."""

    setting: str
    column: str
    mean: float
    low: float | None
    high: float | None
    n: int


def _parse_one(item: Any, where: str) -> Published:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a mapping of {', '.join(REQUIRED)}[, column]")
    known = {f.name for f in dataclasses.fields(Published)}
    for key in item:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key; keys: {', '.join(sorted(known))}")
    for key in REQUIRED:
        if key not in item or item[key] is None:
            raise ValueError(f"{where}.{key} is missing")
    for key in (*TEXT_KEYS, "column"):
        value = item.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ValueError(f"{where}.{key} must be a non-empty string, got {value!r}")
    value = item["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}.value must be a number (metric points), got {value!r}")
    column = item.get("column")
    if column is not None and not all(p.strip() for p in column.partition("=")[::2]):
        raise ValueError(f"{where}.column must be KEY=VALUE (mini_batch=32), got {column!r}")
    return Published(**{**dict(item), "value": float(value)})


def parse_published(items: Sequence[Any] | None) -> tuple[Published, ...]:
    """Entries from config mappings; ValueError naming the entry and key at fault."""
    if items is not None and (isinstance(items, str | Mapping) or not isinstance(items, Sequence)):
        raise ValueError("report.published must be a list of entries")
    return tuple(_parse_one(item, f"report.published[{i}]") for i, item in enumerate(items or ()))


def published_in_records(configs: Sequence[Mapping[str, Any]]) -> tuple[Published, ...]:
    """The entries the runs' own configs carry (``report.published``), first valid one wins; a
    record's entries that do not parse are skipped with a warning (records are untrusted)."""
    for config in configs:
        report = config.get("report") if isinstance(config, Mapping) else None
        items = report.get("published") if isinstance(report, Mapping) else None
        if not items:
            continue
        try:
            return parse_published(items)
        except ValueError as err:
            log.warning("a run record's published numbers are skipped: %s", err)
    return ()


def _ours(
    entry: Published,
    analyses: Sequence[MetricAnalysis],
    pivot_keys: tuple[str, str],
    confidence: float,
) -> Iterator[Ours]:
    rows, columns = pivot_keys
    for analysis in (a for a in analyses if a.metric == entry.metric):
        cells = cell_groups(analysis.runs, rows, columns, [entry.metric])
        for (row, level), group in cells.items():
            if str(row) != entry.row or not level_matches(entry.column, columns, level):
                continue
            values = group[entry.metric].astype(float).dropna().tolist()
            estimate = one_sample_delta(values, confidence)
            if estimate is None:
                continue
            yield Ours(
                analysis.described, column_label(columns, level), estimate.diff,
                estimate.low, estimate.high, estimate.n,
            )  # fmt: skip


def _format_ours(ours: Ours, digits: int) -> str:
    if ours.low is None or ours.high is None:
        return f"{ours.mean:.{digits}f} (n={ours.n}, no interval)"
    return f"{ours.mean:.{digits}f} [{ours.low:.{digits}f}, {ours.high:.{digits}f}] (n={ours.n})"


def _table_rows(
    entries: Sequence[Published],
    analyses: Sequence[MetricAnalysis],
    pivot_keys: tuple[str, str],
    confidence: float,
) -> list[list[str]]:
    out = []
    for entry in entries:
        view = metric_view(entry.metric)
        head = [str(row_label(pivot_keys[0], entry.row)), view.title, f"{entry.value:.1f}"]
        found = list(_ours(entry, analyses, pivot_keys, confidence))
        for ours in found:
            where = f"{ours.column}; {ours.setting}"
            out.append([*head, _format_ours(ours, view.digits), where, entry.source, entry.budget])
        if not found:
            where = entry.column or "any column"
            out.append([*head, "not run", where, entry.source, entry.budget])
    return out


def published_section(
    entries: Sequence[Published],
    analyses: Sequence[MetricAnalysis],
    pivot_keys: tuple[str, str],
    confidence: float = 0.95,
) -> list[str]:
    """``## Published (different budget)``: each entry beside our cell; ``[]`` without entries."""
    if not entries:
        return []
    header = [pivot_keys[0], "metric", "published", "ours", "where (ours)", "source", "budget"]
    table = pd.DataFrame(_table_rows(entries, analyses, pivot_keys, confidence), columns=header)
    table = table.map(lambda text: str(text).replace("|", "\\|").replace("\n", " "))
    return [
        "## Published (different budget)",
        "",
        "These numbers were published for a different budget (ImageNet, the full schedule and "
        "the authors' recipe), not this study's. They are shown for orientation only and never "
        "tested against ours. Ours: mean over seeds with its "
        f"{confidence:.0%} t interval, at the cell the entry names (`not run`: no such cell).",
        "",
        table.to_markdown(index=False, disable_numparse=True),
        "",
    ]


def published_rows(
    entries: Sequence[Published], study: str, pivot_keys: tuple[str, str]
) -> list[dict[str, Any]]:
    """results.csv's ``published`` rows: the published value as ``estimate``, its source and
    budget in ``test`` (docs/REPORTS.md); verdict ``untested``."""
    return [
        {
            "study": study,
            "metric": e.metric,
            "kind": "published",
            "rows": pivot_keys[0],
            "row": e.row,
            "columns": pivot_keys[1],
            "column": e.column or "",
            "estimate": e.value,
            "test": f"published: {e.source} ({e.budget})",
            "verdict": "untested",
        }
        for e in entries
    ]
