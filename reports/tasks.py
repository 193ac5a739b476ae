"""How a report shows each task and each metric, defined once.

The tasks and the metrics they record come from ``runners.core.record.TASK_METRICS``; this
module adds only the presentation: which metrics a section tabulates when none of the requested
ones was recorded, the model table's metric columns, and each metric's section title, column
header and decimals. A task this table does not know (or a record without one) is shown as
:data:`runners.core.record.DEFAULT_TASK`.
"""

from __future__ import annotations

from dataclasses import dataclass

from runners.core.record import COCO_METRICS, DEFAULT_TASK

__all__ = ["METRIC_VIEWS", "TASK_VIEWS", "MetricView", "TaskView", "metric_view", "task_view"]


@dataclass(frozen=True)
class TaskView:
    """How a report shows one task."""

    #: Tabulated when none of the requested metrics was recorded; the first is the task's
    #: primary metric (``TASK_METRICS``), and a section plots its first metric.
    shown: tuple[str, ...]
    #: The metric columns of the model table (:mod:`reports.model_table`), in order.
    model_columns: tuple[str, ...]


#: Classification as the CSPNet README's tables; detection with COCOeval's AP .. APL.
TASK_VIEWS = {
    "classify": TaskView(shown=("top1", "top5"), model_columns=("top1", "top5")),
    "detect": TaskView(shown=("AP", "AP50"), model_columns=COCO_METRICS[:6]),
}


@dataclass(frozen=True)
class MetricView:
    """How a report shows one metric."""

    #: The heading of its pivot and difference tables.
    title: str
    #: Its column header in the model table.
    header: str
    #: Decimals: 1 for percentages (as the CSPNet and DropBlock tables print accuracy), 3 for a
    #: loss.
    digits: int = 1


#: COCO's size suffix is capitalised in headers as CSPNet's table prints it (``APs`` -> APS).
METRIC_VIEWS = {
    "top1": MetricView("Top-1 (%)", "Top-1"),
    "top5": MetricView("Top-5 (%)", "Top-5"),
    "loss": MetricView("validation loss", "loss", digits=3),
    "train_eval_top1": MetricView("Top-1 on training images (%)", "train Top-1"),
    "train_eval_loss": MetricView("loss on training images", "train loss", digits=3),
    "gap_top1": MetricView("Top-1 on training images − on validation (points)", "gap Top-1"),
    "gap_loss": MetricView("Validation loss − loss on training images", "gap loss", digits=3),
    **{m: MetricView(f"{m} (%)", m[:2] + m[2:].upper()) for m in COCO_METRICS},
    "AP": MetricView("AP (COCO, %)", "AP"),
}


def task_view(task: object) -> TaskView:
    """``task``'s entry of :data:`TASK_VIEWS`; ``DEFAULT_TASK``'s for any other value."""
    return TASK_VIEWS.get(task if isinstance(task, str) else "", TASK_VIEWS[DEFAULT_TASK])


def metric_view(metric: str) -> MetricView:
    """``metric``'s entry of :data:`METRIC_VIEWS`; its own name, one decimal, for any other."""
    return METRIC_VIEWS.get(metric) or MetricView(metric, metric)
