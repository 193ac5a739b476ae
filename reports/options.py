"""What a RESULTS.md shows, as one value: :class:`ReportOptions`.

The pivot (rows x columns), the metrics, the baseline, whether stale runs are tabulated, the
interval's coverage, the title and whether plots are drawn. ``python -m reports`` and
``reports.write_results`` take them as separate options (docs/REPORTS.md);
``reports.write_records`` and ``reports.render_results`` take this value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from reports.claims import Claim
from reports.collect import COLUMNS, DETECTION_METRICS, GAP_METRICS
from reports.deltas import Baseline, parse_baseline
from reports.published import Published
from reports.tables import MetricPivot, check_key, parse_pivot

__all__ = ["METRICS", "ReportOptions"]

#: Metrics a table can show (columns of the runs table).
METRICS = (
    "top1", "top5", "loss", "best_top1", "best_top5", "train_eval_top1", "train_eval_loss",
    *GAP_METRICS, *DETECTION_METRICS,
)  # fmt: skip


@dataclass(frozen=True)
class ReportOptions:
    """The layout and content of one RESULTS.md.

    Args:
        rows, columns: the pivot's keys (columns of the runs table).
        metrics: metrics to tabulate; ``None`` (or none recorded) -> the task's defaults.
        title: the first heading.
        baseline: ``KEY=VALUE`` naming the arm deltas are taken against; ``None``: no deltas.
        include_stale: tabulate runs of an older code version instead of leaving them out.
        confidence: the coverage of the difference intervals.
        plots: draw the PNG plots (and read the per-epoch metrics they need).
        claims: pre-registered claims the Findings check by name (:mod:`reports.claims`).
        published: numbers of another budget shown beside ours (:mod:`reports.published`).
    """

    rows: str = "regularizer"
    columns: str = "batch"
    metrics: Sequence[str] | None = None
    title: str = "Results"
    baseline: str | None = "regularizer=none"
    include_stale: bool = False
    confidence: float = 0.95
    plots: bool = True
    claims: Sequence[Claim] = ()
    published: Sequence[Published] = ()

    def __post_init__(self) -> None:
        if self.metrics is not None:  # a list from argparse or a config: frozen as a tuple
            object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "published", tuple(self.published))

    def with_pivot(self, pivot: str | None) -> ReportOptions:
        """These options with ``pivot="ROWS,COLUMNS"`` as the rows and columns (when given).

        Raises:
            ValueError: ``pivot`` is not two different keys of the runs table.
        """
        if not pivot:
            return self
        rows, columns = parse_pivot(pivot, COLUMNS)
        return dataclasses.replace(self, rows=rows, columns=columns)

    def pivot(self, metric: str) -> MetricPivot:
        """``metric`` laid out as these options' rows x columns."""
        return MetricPivot(self.rows, self.columns, metric)

    def checked_baseline(self) -> Baseline | None:
        """Check the pivot's keys and the metrics; the parsed baseline (``None``: no deltas).

        Raises:
            ValueError: naming the option, the value and the keys that exist.
        """
        check_key(self.rows, COLUMNS, "rows")
        check_key(self.columns, COLUMNS, "columns")
        for metric in self.metrics or ():
            check_key(metric, METRICS, "metric")
        return parse_baseline(self.baseline, self.rows, self.columns) if self.baseline else None
