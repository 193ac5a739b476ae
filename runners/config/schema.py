"""Structured config: the schema of one job, registered in Hydra's ConfigStore.

Hydra composes ``conf/config.yaml`` on top of these dataclasses, so a mistyped key or a wrongly
typed value fails at composition (OmegaConf names the ``full_key``). Rules that a type cannot
express (ranges, divisibility, names that must exist in a registry) live in
:mod:`runners.config.rules`, which runs before anything is trained and raises
:class:`ConfigError` with one line that names the key, the rule and the value received.

The layout follows Hydra's structured-config tutorial (``5.1_structured_config_schema_same_config_group``):
``base_*`` schemas in the ConfigStore, YAML options that extend them.

This module must stay light to import (no torch): Hydra imports it for ``--help`` and for every
tab completion.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from regularizers import specs as regularizer_specs
from regularizers.base import GroupRegularizerConfig, RegularizerConfig
from runners.core.errors import ConfigError
from runners.core.record import (
    CLASSIFICATION_METRICS,
    COCO_METRICS,
    GAP_METRICS,
    TASK_METRICS,
    TRAIN_EVAL_PREFIX,
)

__all__ = [
    "DATA_SCHEMAS",
    "OPTION_SCHEMAS",
    "PRIMARY_METRIC",
    "TASK_SCHEMAS",
    "BackboneConfig",
    "CheckpointConfig",
    "ClassifyTaskConfig",
    "CocoDataConfig",
    "CocoLayoutConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DdpConfig",
    "DetectTaskConfig",
    "Device",
    "DiskDataConfig",
    "DivergenceConfig",
    "GeneratedDataConfig",
    "GroupRegularizerConfig",
    "ImageFolderDataConfig",
    "ImageFolderLayoutConfig",
    "LoggerConfig",
    "OptimConfig",
    "RegularizerConfig",
    "ReportConfig",
    "SyntheticDataConfig",
    "SyntheticDetDataConfig",
    "TaskConfig",
    "config_hash",
    "register_configs",
]

#: The number a task is judged by (what run.py returns and a sweeper optimises).
PRIMARY_METRIC = {task: metrics.primary for task, metrics in TASK_METRICS.items()}
#: Metrics a report can tabulate: classification's, then COCOeval's twelve.
REPORT_METRICS = (
    *CLASSIFICATION_METRICS,
    f"{TRAIN_EVAL_PREFIX}top1",
    f"{TRAIN_EVAL_PREFIX}loss",
    *GAP_METRICS,
    *COCO_METRICS,
)
#: Keys that do not change what a run computes, so they are left out of the config hash.
#: ``divergence`` only decides when a run is stopped, ``force`` only whether it reruns,
#: ``checkpoint`` only how often state is saved.
HASH_EXCLUDED_KEYS = ("logger", "report", "study", "checkpoint", "divergence", "force")
#: Limits on untrusted input (docs/ROBUSTNESS.md): they decide whether a run may start, never
#: what it computes, so they stay out of the hash too (and raising one keeps completed runs).
#: Keys added after runs were recorded: at these values they stay out of the hash, so a record
#: made before the key existed keeps its hash (and is not taken for stale).
HASH_OMITTED_AT_DEFAULT = (("backbone", "source", "registry"), ("backbone", "checkpoint", None))
HASH_EXCLUDED_LIMITS = (
    ("data", "max_annotation_mb"),
    ("data", "max_image_pixels"),
    ("backbone", "max_memory_gb"),
)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class LoggerMode(str, Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class TaskConfig:
    """What is trained and how it is scored: the keys every task has.

    Each task option extends it with its own keys (:data:`TASK_SCHEMAS`), so a composed
    ``task`` node holds only the chosen task's keys.
    """

    name: str = MISSING
    #: Evaluate on the validation split after every ``eval_every`` epochs (and after the last).
    eval_every: int = 1


@dataclass
class ClassifyTaskConfig(TaskConfig):
    """``task=classify``: cross-entropy, scored by top-k accuracy."""

    name: str = "classify"
    #: The k of each top-k accuracy reported (Top-1 and Top-5, as ImageNet tables do).
    topk: list[int] = field(default_factory=lambda: [1, 5])
    label_smoothing: float = 0.0
    #: Training images also scored at each evaluation, in eval mode without augmentation (an
    #: evenly spaced subset, the same for every run): ``train_eval_loss`` / ``train_eval_top1``,
    #: from which RESULTS.md shows the generalization gap. 0: none.
    train_eval_samples: int = 10_000


@dataclass
class DetectTaskConfig(TaskConfig):
    """``task=detect``: RetinaNet (``models.detection``), scored by COCOeval."""

    name: str = "detect"
    #: Channels of the FPN and of RetinaNet's heads (256 in the paper).
    fpn_channels: int = 256
    #: Base anchor side on P3..P7 in pixels (the paper's 32..512 are for 800 px images).
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    #: Detections kept per image after NMS (COCOeval reads at most 100) ...
    detections_per_img: int = 100
    #: ... among those scoring at least ``score_thresh`` (torchvision's and Detectron's 0.05).
    score_thresh: float = 0.05


@dataclass
class DataConfig:
    """A data set: the keys every data option reads (size, normalisation, loading).

    Each data option extends it (:data:`DATA_SCHEMAS`) through the intermediate schemas of the
    keys it shares with others: its layout (:class:`ImageFolderLayoutConfig`,
    :class:`CocoLayoutConfig`) and where it comes from (:class:`DiskDataConfig` for a set read
    from ``root``, :class:`GeneratedDataConfig` for one generated into ``cache_dir``).
    ``synthetic`` generates an ImageNet-layout tree (``train/<class>/*``) and loads it through
    the same ImageFolder code as ``imagefolder``; ``synthetic_det`` generates a COCO-layout set
    (``<split>/*``, ``<ann>/instances_<split>.json``) and loads it through the same code as
    ``coco``.
    """

    name: str = MISSING
    image_size: int = 32
    #: Per-channel normalisation applied after scaling pixels to [0, 1].
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    augment: bool = True
    workers: int = 0
    #: Keep decoded images in memory after the first epoch (small data sets only).
    cache_images: bool = False
    # Limits on untrusted files (docs/ROBUSTNESS.md, "Untrusted data files").
    #: Largest width x height decoded; a larger image fails the job naming the file. Pillow's
    #: own limit (about 89 MP, 256 MB as RGB), enforced as an error instead of a warning.
    max_image_pixels: int = 89_478_485


@dataclass
class ImageFolderLayoutConfig(DataConfig):
    """ImageNet layout (``synthetic``, ``imagefolder``): ``<root>/{train,val}/<class>/*``."""

    #: Training crop: ``pad`` (random crop of the padded image, CIFAR-style) or ``resized``
    #: (RandomResizedCrop, ImageNet-style; evaluation then resizes and centre-crops).
    crop: str = "pad"


@dataclass
class CocoLayoutConfig(DataConfig):
    """COCO layout (``coco``, ``synthetic_det``): images in ``<root>/<split>/``, annotations in
    ``<ann>/instances_<split>.json`` (``ann`` relative to ``root`` unless absolute)."""

    ann: str = "annotations"
    train_split: str = "train"
    val_split: str = "val"
    #: Largest COCO annotation file read, in MB (COCO's train2017 is 448 MB); a limit on
    #: untrusted files, as ``max_image_pixels``.
    max_annotation_mb: float = 2048.0


@dataclass
class DiskDataConfig(DataConfig):
    """A data set read from disk (``imagefolder``, ``coco``)."""

    #: Required (``???`` in the option's YAML).
    root: str | None = None


@dataclass
class GeneratedDataConfig(DataConfig):
    """A data set generated once into ``cache_dir`` (``synthetic``, ``synthetic_det``)."""

    num_classes: int = 10
    #: Seed of the data set itself; independent of the run's ``seed`` so that every arm of a
    #: study trains on the same images.
    seed: int = 0
    cache_dir: str = ".cache/data"


@dataclass
class SyntheticDataConfig(GeneratedDataConfig, ImageFolderLayoutConfig):
    """``data=synthetic``: shapes on clutter, generated as an ImageFolder tree."""

    name: str = "synthetic"
    train_per_class: int = 100
    val_per_class: int = 50


@dataclass
class ImageFolderDataConfig(DiskDataConfig, ImageFolderLayoutConfig):
    """``data=imagefolder``: an ImageNet-layout directory."""

    name: str = "imagefolder"


@dataclass
class SyntheticDetDataConfig(GeneratedDataConfig, CocoLayoutConfig):
    """``data=synthetic_det``: shapes at several scales, generated in COCO layout."""

    name: str = "synthetic_det"
    #: Images per split.
    train_images: int = 400
    val_images: int = 100


@dataclass
class CocoDataConfig(DiskDataConfig, CocoLayoutConfig):
    """``data=coco``: COCO, or any set in its layout."""

    name: str = "coco"


#: The schema of each task option (``conf/task/<name>.yaml`` extends ``base_task_<name>``).
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {
    "classify": ClassifyTaskConfig,
    "detect": DetectTaskConfig,
}
#: The schema of each data option (``conf/data/<name>.yaml`` extends ``base_data_<name>``).
DATA_SCHEMAS: dict[str, type[DataConfig]] = {
    "synthetic": SyntheticDataConfig,
    "imagefolder": ImageFolderDataConfig,
    "synthetic_det": SyntheticDetDataConfig,
    "coco": CocoDataConfig,
}
#: The groups whose options have schemas of their own, and those schemas.
OPTION_SCHEMAS: dict[str, dict[str, type]] = {"task": TASK_SCHEMAS, "data": DATA_SCHEMAS}


@dataclass
class BackboneConfig:
    """A backbone from the ``models`` registry (or any timm model); ``kwargs`` go to its builder."""

    name: str = MISSING
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Where ``name`` is looked up: ``registry`` (the curated backbones, ``python -m models
    #: --list``) or ``timm`` (any timm model: ``backbone=timm backbone.name=convnext_atto``).
    source: str = "registry"
    #: Local pretrained weights (``.safetensors``, or a PyTorch file read with
    #: ``weights_only=True``) loaded before the regularizer is placed; never downloaded.
    checkpoint: str | None = None
    #: The Darknet .cfg file of ``backbone=darknet`` (docs/DARKNET.md); unused otherwise.
    cfg: str | None = None
    #: Largest training-memory estimate allowed, in GB: fp32 weights, gradients and momentum
    #: plus every layer's output for one mini-batch, measured on the meta device.
    max_memory_gb: float = 256.0


@dataclass
class OptimConfig:
    """SGD with momentum; ``lr = base_lr * batch / 256`` (Goyal et al. 2017, linear scaling)."""

    name: str = "sgd"
    base_lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    #: Applied to convolution and linear weights only, never to BN parameters or biases.
    weight_decay: float = 5e-4
    #: Linear warmup from 0, then cosine decay to 0 over the remaining steps.
    warmup_epochs: float = 1.0


@dataclass
class DdpConfig:
    """Data-parallel training under ``torchrun`` (``runners.dist.distributed``); ignored by a single
    process. ``batch`` stays the samples per optimizer step over all processes."""

    #: SyncBatchNorm: BN statistics over the whole step's chunk on all GPUs (CUDA only; not with
    #: CBN, whose statistics are per process).
    sync_bn: bool = False
    #: DDP's ``find_unused_parameters`` (a graph traversal per step), for models with parameters
    #: that the loss never reaches. ``null``: on for ``task=detect`` (RetinaNet never runs the
    #: backbone's classifier), off otherwise.
    find_unused_parameters: bool | None = None


@dataclass
class LoggerConfig:
    """Experiment tracking besides ``run.json``: ``wandb`` (offline by default) or ``none``."""

    name: str = "none"
    project: str = "ablation-harness"
    entity: str | None = None
    mode: LoggerMode = LoggerMode.offline
    #: Seconds ``wandb.init`` may take (online: reaching the server) before the job goes on
    #: without W&B.
    init_timeout: float = 60.0


@dataclass
class DivergenceConfig:
    """When a job stops with status ``diverged`` (``runners.engine.divergence``).

    A NaN or infinite training loss always stops it; so does a loss above ``factor`` times the
    first one (``null`` turns that rule off).
    """

    factor: float | None = 10.0
    #: Forwards between checks; each check waits for the device once.
    check_every: int = 10


@dataclass
class CheckpointConfig:
    """``checkpoint.pt`` in the job directory (``runners.engine.checkpoint``); resuming is exact on a CPU."""

    #: Write a checkpoint at the end of every epoch ...
    enabled: bool = True
    #: ... and every N optimizer steps inside an epoch (0: epoch ends only).
    every_steps: int = 0
    #: Continue from the job directory's checkpoint when it belongs to the same config.
    resume: bool = True


@dataclass
class ReportConfig:
    """How the multirun callback tabulates a study: rows x columns, one table per metric."""

    rows: str = "regularizer"
    columns: str = "batch"
    metrics: list[str] = field(default_factory=lambda: ["top1", "top5"])
    out: str = "RESULTS.md"
    #: Differences are taken against the runs matching ``key=value`` (reports/deltas.py).
    baseline: str = "regularizer=none"
    #: Tabulate runs of older code versions too (they are listed as stale otherwise).
    include_stale: bool = False
    #: Claims the study pre-registers; RESULTS.md's Findings check each by name
    #: (``reports.claims``: name, text, kind, arm, metric, direction, size, at).
    claims: list[dict[str, Any]] = field(default_factory=list)
    # seeds=auto (docs/REPORTS.md, "Seeds until the answer is clear"); the sweeper reads them.
    #: An inconclusive comparison whose interval's half-width (metric points) is above this
    #: gets more seeds.
    target_halfwidth: float = 1.0
    #: The most seeds a cell (one combination of the grid) gets.
    max_seeds: int = 8
    #: The study's compute budget: jobs launched in all rounds together (null: no budget).
    max_jobs: int | None = None
    #: Seeds added per round to a cell that needs them.
    seeds_per_round: int = 1
    #: Numbers published under another budget, shown beside ours and never tested
    #: (``reports.published``: row, column, metric, value, source, budget).
    published: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Config:
    """One job. Top-level keys use Darknet's words where the seed did (DESIGN.md, Vocabulary)."""

    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    ddp: DdpConfig = field(default_factory=DdpConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    #: The study this job belongs to: W&B group and sweep directory name.
    study: str = "adhoc"
    #: Samples per optimizer step.
    batch: int = 64
    #: Forwards per optimizer step, gradients accumulated (Darknet's meaning).
    subdivisions: int = 1
    epochs: int = 10
    seed: int = 0
    device: Device = Device.auto
    #: bf16 autocast on CUDA (ignored on the CPU).
    amp: bool = True
    #: channels_last memory format on CUDA (ignored on the CPU).
    channels_last: bool = True
    #: Deterministic algorithms (exact reruns on the CPU; slower cuDNN choices on GPU).
    deterministic: bool = True
    #: Rerun a job even when its directory holds a completed run of the same config and code.
    force: bool = False


def register_configs() -> None:
    """Store the schemas so YAML options can extend them, and register the resolvers
    ``conf/config.yaml`` uses for its directories (``runners.config.paths``).

    A group's schema is ``base_<group>`` (``defaults: [/base_<group>@_here_]``); a group whose
    options have keys of their own has one schema per option, ``base_<group>_<option>``
    (:data:`OPTION_SCHEMAS`). They are stored without a group, so
    ``--help`` lists only real options.
    """
    from runners.config.paths import register_resolvers

    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, schemas in OPTION_SCHEMAS.items():
        for name, schema in schemas.items():
            cs.store(name=f"base_{group}_{name}", node=schema)
    cs.store(name="base_backbone", node=BackboneConfig)
    # One schema per regularizer (regularizers/<name>.py), each with its own keys only.
    for spec in regularizer_specs():
        cs.store(name=f"base_regularizer_{spec.name}", node=spec.schema)
    cs.store(name="base_optim", node=OptimConfig)
    cs.store(name="base_logger", node=LoggerConfig)


def resolved_container(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain JSON-able Python, interpolations resolved, enums as strings."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    container.pop("hydra", None)
    return container


def _get(container: dict[str, Any], group: str, key: str) -> object:
    node = container.get(group)
    return node.get(key, "<absent>") if isinstance(node, dict) else "<absent>"


def _file_sha256(path: str | None) -> str | None:
    """SHA-256 of a config-named file (None if unset or not a file), cached by size and mtime."""
    if not path or not Path(path).expanduser().is_file():
        return None
    stat = Path(path).expanduser().stat()
    return _sha256_of(str(Path(path).expanduser().resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(cfg: DictConfig | dict[str, Any]) -> str:
    """SHA-256 (first 16 hex) of the resolved config, minus keys that do not change the result.

    A Darknet cfg file and a checkpoint file are part of the config by content, not only by
    path: editing the file in place gives a new hash (so earlier runs become stale instead of
    silently mixing in).
    """
    container = cfg if isinstance(cfg, dict) else resolved_container(cfg)
    relevant = {k: v for k, v in container.items() if k not in HASH_EXCLUDED_KEYS}
    omitted = [
        (g, k) for g, k, default in HASH_OMITTED_AT_DEFAULT if _get(relevant, g, k) == default
    ]
    for group, key in [*HASH_EXCLUDED_LIMITS, *omitted]:
        if isinstance(relevant.get(group), dict) and key in relevant[group]:
            relevant[group] = {k: v for k, v in relevant[group].items() if k != key}
    backbone = container.get("backbone") or {}
    for key in ("cfg", "checkpoint"):  # files that are part of the config by content
        digest = _file_sha256(backbone.get(key))
        if digest:
            relevant[f"backbone_{key}_sha256"] = digest
    blob = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
