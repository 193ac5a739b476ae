"""The run record (``run.json``): the one contract between runners and reports.

Defined once here, versioned by :data:`SCHEMA_VERSION`; runners write it through
:meth:`RunRecord.write` and reports read it through :func:`load_record`. A reader refuses a
record of a newer schema than it knows rather than guessing at its fields.

Writes are atomic (``runners.core.atomic_write``), so a reader or a crash never sees half a record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from runners.core.atomic_write import atomic_write

__all__ = [
    "CLASSIFICATION_METRICS",
    "COCO_METRICS",
    "DEFAULT_TASK",
    "GAP_METRICS",
    "LOWER_IS_BETTER",
    "RECORD_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "TASK_METRICS",
    "TRAIN_EVAL_PREFIX",
    "CodeVersion",
    "EpochMetrics",
    "RunRecord",
    "TaskMetrics",
    "best_metrics",
    "load_record",
    "task_metrics",
]

#: 2: per-epoch validation metrics moved into ``EpochMetrics.metrics`` (any task's names);
#: version-1 records (flat ``loss``/``top1``/``top5``) are upgraded when read.
SCHEMA_VERSION = 2
RECORD_NAME = "run.json"
#: Classification's validation metrics (percent, except ``loss``).
CLASSIFICATION_METRICS = ("loss", "top1", "top5")
#: Detection's: COCOeval's twelve bbox ``stats`` names, in its order (percent).
COCO_METRICS = (
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
)  # fmt: skip
#: Classification also scores a subset of its training images (``task.train_eval_samples``),
#: recorded under these names: the generalization gap is train minus validation.
TRAIN_EVAL_PREFIX = "train_eval_"
#: The generalization gap a report derives from those scores (``reports.collect``), each signed
#: so that positive means overfitting: Top-1 train − val (points), loss val − train.
GAP_METRICS = ("gap_top1", "gap_loss")
#: Metrics where smaller is better; every other metric is best at its maximum.
LOWER_IS_BETTER = frozenset({"loss", f"{TRAIN_EVAL_PREFIX}loss"})
#: ``running`` until the job ends; ``diverged`` and ``pruned`` are used by later stages.
STATUSES = ("running", "completed", "failed", "diverged", "pruned")


@dataclass(frozen=True)
class TaskMetrics:
    """What a task records and is judged by.

    ``metrics``: the validation metrics it records each evaluated epoch
    (``EpochMetrics.metrics`` and ``RunRecord.final``), in order. ``primary``: the one number
    it is judged by (what ``run.py`` returns, the Optuna sweeper's ``metric: auto``).
    """

    metrics: tuple[str, ...]
    primary: str


#: Each task's metrics, defined once: the config's ``PRIMARY_METRIC``, the sweeper's objective
#: and the reports' tables read them from here.
TASK_METRICS = {
    "classify": TaskMetrics(CLASSIFICATION_METRICS, primary="top1"),
    "detect": TaskMetrics(COCO_METRICS, primary="AP"),
}
#: The task of a record that names none (or one this code does not know): classification.
DEFAULT_TASK = "classify"


def task_metrics(task: object) -> TaskMetrics:
    """``task``'s entry of :data:`TASK_METRICS`; :data:`DEFAULT_TASK`'s for any other value."""
    return TASK_METRICS.get(task if isinstance(task, str) else "", TASK_METRICS[DEFAULT_TASK])


@dataclass
class CodeVersion:
    """The code a run was trained with: git commit of the project and whether it had edits.

    ``edits`` fingerprints the uncommitted edits (the first 16 hex digits of the SHA-256 of
    ``git diff HEAD --binary``; ``None`` when clean or unknown), so two runs of one commit with
    the same edits are recognisably the same code.
    """

    commit: str | None = None
    dirty: bool | None = None
    edits: str | None = None

    def same_as(self, other: CodeVersion) -> bool:
        """Whether both are known and identical: one commit, and the same edits (or none)."""
        if self.commit is None or self.dirty is None or other.dirty is None:
            return False
        if self.dirty and self.edits is None:
            return False  # dirty, but the edits cannot be told apart
        return (self.commit, self.dirty, self.edits) == (other.commit, other.dirty, other.edits)

    def describe(self) -> str:
        """``1a2b3c4``, ``1a2b3c4 with edits 9f8e7d6c``, or ``unknown code``."""
        if self.commit is None:
            return "unknown code (not a git checkout)"
        if not self.dirty:
            return self.commit[:7]
        return f"{self.commit[:7]} with edits {self.edits[:8] if self.edits else '(unknown)'}"


@dataclass
class EpochMetrics:
    """One epoch: training numbers, and the validation ``metrics`` when it was evaluated.

    ``metrics`` holds the task's numbers: ``loss``, ``top1``, ``top5`` (percent) for
    classification (and ``train_eval_loss``, ``train_eval_top1``, ... on training images when
    ``task.train_eval_samples`` > 0); the twelve COCO numbers ``AP`` .. ``ARl`` (percent) for detection. It is
    empty for an epoch that was not evaluated.
    """

    epoch: int
    train_loss: float
    lr: float
    epoch_time_s: float
    images_per_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochMetrics:
        """Read one epoch; a version-1 epoch's flat ``loss``/``top1``/``top5`` become ``metrics``."""
        values = dict(data)
        metrics = dict(values.pop("metrics", None) or {})
        for key in ("loss", "top1", "top5"):
            if key in values:
                metrics[key] = values.pop(key)
        return cls(**values, metrics=metrics)


def best_metrics(epochs: list[EpochMetrics]) -> dict[str, float]:
    """Each metric's best over ``epochs`` on its own: min for :data:`LOWER_IS_BETTER`, else max.

    NaN values are ignored; a metric that is NaN in every epoch is NaN.
    """
    values: dict[str, list[float]] = {}
    for epoch in epochs:
        for name, value in epoch.metrics.items():
            values.setdefault(name, []).append(value)
    best = {}
    for name, series in values.items():
        finite = [v for v in series if v == v]
        pick = min if name in LOWER_IS_BETTER else max
        best[name] = pick(finite) if finite else float("nan")
    return best


@dataclass
class RunRecord:
    """Everything a report needs about one job, and nothing it would have to recompute."""

    status: str = "running"
    schema_version: int = SCHEMA_VERSION
    error: str | None = None
    traceback: str | None = None
    study: str = ""
    run_name: str = ""
    job_dir: str = ""
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    code_version: CodeVersion = field(default_factory=CodeVersion)
    packages: dict[str, str] = field(default_factory=dict)
    host: str = ""
    device: str = ""
    batch: int = 0
    subdivisions: int = 1
    #: Samples one BatchNorm forward sees: batch / subdivisions, divided by world_size too under
    #: DDP without SyncBatchNorm.
    mini_batch: int = 0
    #: Processes that trained the run together (torchrun's WORLD_SIZE; 1 without DDP).
    world_size: int = 1
    params: int | None = None
    flops: int | None = None
    #: Where the regularizer was placed (dotted module paths), for audit.
    placements: list[str] = field(default_factory=list)
    epochs: list[EpochMetrics] = field(default_factory=list)
    #: Metrics of the last evaluation: top1, top5 (percent) and loss; or AP .. ARl for detection.
    final: dict[str, float] = field(default_factory=dict)
    #: Best over epochs, each metric on its own (:func:`best_metrics`).
    best: dict[str, float] = field(default_factory=dict)
    #: Training images per second over all epochs (evaluation excluded).
    throughput: float | None = None
    wall_time_s: float | None = None
    #: Peak memory in MiB: CUDA max allocated on a GPU, process max RSS on a CPU.
    peak_memory_mb: float | None = None
    started_at: str = ""
    ended_at: str | None = None
    #: Set when the job continued from a checkpoint: ``{"epoch": e, "step": s}`` where it resumed.
    resumed_from: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"run record status must be one of {', '.join(STATUSES)}, got {self.status!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"run record schema_version {version!r} is not supported (this code reads <= {SCHEMA_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        code = data.get("code_version") or {}
        if not isinstance(code, dict):
            raise ValueError(f"code_version must be an object, got {type(code).__name__}")
        known_code = {f.name for f in fields(CodeVersion)}
        values["code_version"] = CodeVersion(**{k: v for k, v in code.items() if k in known_code})
        values["epochs"] = [EpochMetrics.from_dict(e) for e in data.get("epochs") or []]
        values["schema_version"] = SCHEMA_VERSION
        return cls(**values)

    def write(self, job_dir: str | os.PathLike[str]) -> Path:
        """Write ``run.json`` into ``job_dir`` atomically; returns its path."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=True) + "\n"
        return atomic_write(Path(job_dir) / RECORD_NAME, text)


#: A run record larger than this is refused unread (a real one is kilobytes to a few MiB).
MAX_RECORD_BYTES = 64 * 2**20


def load_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read a ``run.json`` (or the ``run.json`` inside a job directory).

    Records are data from disk, possibly copied from elsewhere: anything that is not a valid
    record (not UTF-8, not JSON, too deep, too large, wrong types) raises ``ValueError`` naming
    the file; an unreadable file raises ``OSError``.
    """
    target = Path(path)
    if target.is_dir():
        target = target / RECORD_NAME
    size = target.stat().st_size
    if size > MAX_RECORD_BYTES:
        raise ValueError(f"{target}: not a valid run record ({size} bytes, more than any record)")
    try:
        data = json.loads(target.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise ValueError(f"{target}: not a valid run record ({reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{target}: not a valid run record (a JSON {type(data).__name__})")
    try:
        return RunRecord.from_dict(data)
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise ValueError(f"{target}: not a valid run record ({err})") from None
