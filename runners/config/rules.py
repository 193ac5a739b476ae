"""Validation of a composed config: the rules a type cannot express.

:func:`validate` runs before anything is trained and raises :class:`ConfigError` on the first
rule broken, in one line that names the key, the rule and the value received. It checks, in this
order: the run's budget, the task, the data, the backbone, the regularizer, the optimizer, and
the keys that only decide when a run stops or what is recorded.

Rules come in two kinds:

- generic rules check one key's type-independent range or name (``batch >= 1``, ``data.crop``
  one of ``pad``/``resized``) through the small helpers of ``runners.core.checks``;
- per-option rules sit beside their option in a registry keyed by the option's name:
  :data:`TASKS` (each task's data options and the rules of its ``task.*`` keys),
  :data:`DATA_OPTIONS` (whether the option reads ``data.root``, and the rules of its own keys),
  :data:`BACKBONE_RULES`, and the regularizers' registry (``regularizers.registry``: each
  regularizer's schema holds only its own keys, and its entry the rules of those keys).

Each task and data option has a schema of its own (``runners.config.schema.TASK_SCHEMAS``,
``DATA_SCHEMAS``), and so does each regularizer (its file in ``regularizers/``), so a composed
node holds only its option's keys, and the rules of those keys run for that option alone (a rule
never reads a key the option lacks).

This module must stay light to import (no torch): the registries of backbones and layer options
are imported inside the functions that read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regularizers.base import GROUPS
from runners.config.schema import (
    DATA_SCHEMAS,
    REPORT_METRICS,
    TASK_SCHEMAS,
    Config,
    ConfigError,
)
from runners.core.checks import at_least as _at_least
from runners.core.checks import check_range as _check_range
from runners.core.checks import one_of as _one_of
from runners.core.checks import positive as _positive

__all__ = [
    "BACKBONE_RULES",
    "DATA_OPTIONS",
    "TASKS",
    "TASK_DATA",
    "DataOption",
    "TaskOption",
    "check_seeds_keys",
    "validate",
]

#: A rule over one config section (or the whole config); raises :class:`ConfigError`.
Rule = Callable[[Any], None]

#: Training crops (``data.crop``), loggers (``logger.name``) and optimizers (``optim.name``).
CROPS = ("pad", "resized")
LOGGERS = ("wandb", "none")
OPTIMIZERS = ("sgd",)


# Generic rules (one key, one rule, one line naming both and the value) live in
# ``runners.core.checks``, shared with the regularizers' own rules.


def _check_schema(group: str, node: Any, schemas: dict[str, type]) -> None:
    """The node is the option its ``name`` says, with that option's keys alone.

    ``task.name=detect`` under ``task=classify`` would leave detection without its keys, and
    ``+task.fpn_channels=1`` (Hydra's ``+`` adds a key even to a struct node) a key nothing reads.
    """
    schema = OmegaConf.get_type(node)
    if schema not in schemas.values():
        return  # not an option's schema (a plain mapping)
    chosen = next(name for name, option in schemas.items() if option is schema)
    if node.name != chosen:
        raise ConfigError(
            f"{group}.name must name the {group} option chosen ({group}={chosen}), got "
            f"{node.name!r}; choose another option with {group}={node.name}"
        )
    keys = {f.name for f in fields(schema)}
    extra = [key for key in node if key not in keys] if isinstance(node, DictConfig) else []
    if extra:
        raise ConfigError(
            f"{group}.{extra[0]}: no such key in {group}={chosen}; "
            "`python run.py --cfg job` lists the keys"
        )


# Tasks: the rules of each task's own keys, and the data options it reads.


def _check_classify_keys(task: Any) -> None:
    """``task.topk``, ``task.label_smoothing`` and ``task.train_eval_samples`` (classification)."""
    if not task.topk or any(k < 1 for k in task.topk):
        raise ConfigError(f"task.topk must be a non-empty list of k >= 1, got {list(task.topk)}")
    _check_range("task.label_smoothing", task.label_smoothing, 0.0, 1.0, True)
    _at_least("task.train_eval_samples", task.train_eval_samples, 0)


def _check_detect_keys(task: Any) -> None:
    """RetinaNet's keys: FPN channels, anchor sizes, score threshold, detections per image."""
    _at_least("task.fpn_channels", task.fpn_channels, 1)
    if len(task.anchor_sizes) != 5 or any(s < 1 for s in task.anchor_sizes):
        raise ConfigError(
            f"task.anchor_sizes needs 5 sizes >= 1 (P3..P7), got {list(task.anchor_sizes)}"
        )
    _check_range("task.score_thresh", task.score_thresh, 0.0, 1.0, True)
    _at_least("task.detections_per_img", task.detections_per_img, 1)


@dataclass(frozen=True)
class TaskOption:
    """A task as validation sees it."""

    #: The data options it reads, in the order an error lists them.
    data: tuple[str, ...]
    #: The rules of the ``task.*`` keys it reads.
    rules: Rule


#: Each task: the data options it reads (ImageNet layout, COCO layout) and its keys' rules.
TASKS: dict[str, TaskOption] = {
    "classify": TaskOption(data=("synthetic", "imagefolder"), rules=_check_classify_keys),
    "detect": TaskOption(data=("synthetic_det", "coco"), rules=_check_detect_keys),
}
#: Each task and the data options it reads.
TASK_DATA: dict[str, tuple[str, ...]] = {name: option.data for name, option in TASKS.items()}


# Data options: which read a data set from ``data.root``, their layout's keys, and the
# generated sets' sizes.


def _check_image_folder_layout(data: Any) -> None:
    """ImageNet layout (``synthetic``, ``imagefolder``): the training crop."""
    _one_of("data.crop", data.crop, CROPS)


def _check_coco_layout(data: Any) -> None:
    """COCO layout (``coco``, ``synthetic_det``): the annotation file's size limit."""
    _positive("data.max_annotation_mb", data.max_annotation_mb)


def _generated_set(classes: tuple[int, int], named: str, sizes: tuple[str, ...]) -> Rule:
    """The rule of a generated data set: ``data.num_classes`` within ``classes`` (the shapes its
    generator draws; ``named`` says which set in the message) and each of ``sizes`` >= 1."""
    low, high = classes

    def check(data: Any) -> None:
        if not low <= data.num_classes <= high:
            raise ConfigError(
                f"data.num_classes must be in [{low}, {high}] for {named}, got {data.num_classes}"
            )
        for key in sizes:
            _at_least(f"data.{key}", getattr(data, key), 1)

    return check


#: ``data=synthetic``: 2..10 classes, images per class >= 1.
_check_synthetic = _generated_set((2, 10), "synthetic data", ("train_per_class", "val_per_class"))
#: ``data=synthetic_det``: 1..10 classes, images per split >= 1.
_check_synthetic_det = _generated_set((1, 10), "synthetic_det", ("train_images", "val_images"))


@dataclass(frozen=True)
class DataOption:
    """A data option as validation sees it."""

    #: It reads an existing data set from ``data.root`` (generated sets live in ``cache_dir``).
    needs_root: bool = False
    #: The rules of its own keys (its layout's, then its own), run only when it is chosen.
    rules: tuple[Rule, ...] = ()


#: Each data option. Every data option a task reads (:data:`TASKS`) is here.
DATA_OPTIONS: dict[str, DataOption] = {
    "synthetic": DataOption(rules=(_check_image_folder_layout, _check_synthetic)),
    "imagefolder": DataOption(needs_root=True, rules=(_check_image_folder_layout,)),
    "synthetic_det": DataOption(rules=(_check_coco_layout, _check_synthetic_det)),
    "coco": DataOption(needs_root=True, rules=(_check_coco_layout,)),
}


# Backbones: the registry in ``models`` names them; a few have rules of their own.


def _check_darknet(cfg: DictConfig | Config) -> None:
    """``backbone=darknet``: the cfg file exists and parses; ``cfg_dropout`` is known."""
    from models.darknet.backbone import CFG_DROPOUT
    from models.darknet.parse import DarknetCfgError, parse_cfg

    if not cfg.backbone.cfg:
        raise ConfigError("backbone.cfg must name a Darknet .cfg file for backbone=darknet")
    try:
        parse_cfg(cfg.backbone.cfg)
    except DarknetCfgError as err:
        raise ConfigError(f"backbone.cfg: {err}") from None
    _one_of("regularizer.cfg_dropout", cfg.regularizer.cfg_dropout, CFG_DROPOUT)


#: Rules of the backbones that have their own, run on the whole config when chosen.
BACKBONE_RULES: dict[str, Rule] = {"darknet": _check_darknet}


# Regularizers: each one's keys and rules are its registry entry (``regularizers/<name>.py``);
# the groups' settings are common to all.


def _check_block_size(prefix: str, settings: Any, size: float, size_mode: str) -> None:
    """A group's block size: whole pixels (``abs``) or a fraction of the map side (``rel``),
    named by the key it was given under (a Darknet alias or ``block_size``)."""
    if size_mode == "abs" and (not math.isfinite(size) or size < 1 or size != int(size)):
        key = "dropblock_size_abs" if settings.dropblock_size_abs is not None else "block_size"
        raise ConfigError(f"{prefix}.{key} must be an integer >= 1 with size_mode=abs, got {size}")
    if size_mode == "rel" and not 0 < size <= 1:
        rel_keys = ("dropblock_size_rel", "dropblock_size")
        key = next((k for k in rel_keys if settings[k] is not None), "block_size")
        raise ConfigError(
            f"{prefix}.{key} must be a fraction in (0, 1] with size_mode=rel, got {size}"
        )


def _check_groups(reg: Any) -> None:
    """``regularizer.groups``: keys 1..4; each group's p, size mode and block size."""
    from layers.drop_block import SIZE_MODES
    from layers.regularizer import effective_group_settings

    for group, settings in reg.groups.items():
        if group not in GROUPS:
            raise ConfigError(f"regularizer.groups keys must be groups 1..4, got {group!r}")
        prefix = f"regularizer.groups.{group}"
        effective = effective_group_settings(settings)
        p_key = "probability" if settings.probability is not None else "p"
        _check_range(f"{prefix}.{p_key}", effective["p"], 0.0, 1.0, True)
        _one_of(f"{prefix}.size_mode", effective["size_mode"], SIZE_MODES)
        _check_block_size(prefix, settings, effective["block_size"], effective["size_mode"])


# The sections of a config, in the order they are checked.


def _check_run(cfg: DictConfig | Config) -> None:
    """The budget (batch, subdivisions, epochs) and the study's name."""
    from runners.config.paths import plain_name

    _at_least("batch", cfg.batch, 1)
    _at_least("subdivisions", cfg.subdivisions, 1)
    if cfg.batch % cfg.subdivisions:
        raise ConfigError(
            f"batch must be divisible by subdivisions (mini_batch = batch / subdivisions), "
            f"got batch={cfg.batch} subdivisions={cfg.subdivisions}"
        )
    _at_least("epochs", cfg.epochs, 1)
    plain_name("study", cfg.study)


def _check_task(cfg: DictConfig | Config) -> None:
    """The task's name and evaluation interval, then the chosen task's own keys."""
    task = cfg.task
    _one_of("task.name", task.name, tuple(TASKS))
    _check_schema("task", task, TASK_SCHEMAS)
    _at_least("task.eval_every", task.eval_every, 1)
    TASKS[task.name].rules(task)


def _check_limits(cfg: DictConfig | Config) -> None:
    """Limits on untrusted input every option has (docs/ROBUSTNESS.md); the COCO layout's
    annotation limit is its own rule (:func:`_check_coco_layout`)."""
    _at_least("data.max_image_pixels", cfg.data.max_image_pixels, 1)
    _positive("backbone.max_memory_gb", cfg.backbone.max_memory_gb)


def _check_data(cfg: DictConfig | Config) -> None:
    """The data option fits the task; then its keys, the input limits and its own rules."""
    data, fits = cfg.data, TASK_DATA[cfg.task.name]
    if data.name not in fits:
        raise ConfigError(
            f"data={data.name} does not fit task={cfg.task.name}; use one of: {', '.join(fits)}"
        )
    _check_schema("data", data, DATA_SCHEMAS)
    option = DATA_OPTIONS[data.name]
    if option.needs_root and not data.root:
        raise ConfigError(f"data.root must name the data set's directory for data={data.name}")
    _at_least("data.image_size", data.image_size, 8)
    _at_least("data.workers", data.workers, 0)
    _check_limits(cfg)
    for rule in option.rules:
        rule(data)
    values = [*data.mean, *data.std]
    if (
        len(data.mean) != 3
        or len(data.std) != 3
        or any(s <= 0 for s in data.std)
        or not all(math.isfinite(v) for v in values)
    ):
        raise ConfigError(
            f"data.mean and data.std need 3 values with std > 0, got {list(data.mean)}, {list(data.std)}"
        )


def _check_backbone(cfg: DictConfig | Config) -> None:
    """The backbone is registered in ``models`` (or its source, timm, has it); a checkpoint file
    exists; then the backbone's own rules, if it has any."""
    # the registry; imported here to keep this module light
    from models import backbone_id, backbone_sources, get_spec, list_backbones

    source = cfg.backbone.source
    _one_of("backbone.source", source, backbone_sources())
    if source == "registry":
        _one_of("backbone.name", cfg.backbone.name, list_backbones())
    else:
        try:
            get_spec(backbone_id(cfg.backbone.name, source))
        except ValueError as err:
            raise ConfigError(f"backbone.name: {err}") from None
    checkpoint = cfg.backbone.checkpoint
    if checkpoint is not None and not Path(str(checkpoint)).expanduser().is_file():
        raise ConfigError(f"backbone.checkpoint: {checkpoint} is not a file")
    rules = BACKBONE_RULES.get(cfg.backbone.name) if source == "registry" else None
    if rules is not None:
        rules(cfg)


def _check_regularizer(cfg: DictConfig | Config) -> None:
    """The regularizer is registered and its section is its schema's; then its own rules, and
    the groups."""
    from regularizers import registry

    reg = cfg.regularizer
    _one_of("regularizer.name", reg.name, registry.names())
    spec = registry.get(reg.name)
    keys = set(reg.keys()) if isinstance(reg, DictConfig) else set(vars(reg))
    if keys != spec.keys:
        raise ConfigError(
            f"regularizer.name={reg.name} does not match the keys composed for the regularizer "
            f"({', '.join(sorted(keys ^ spec.keys))}): choose it with regularizer={reg.name}"
        )
    for rule in spec.rules:
        rule(reg)
    _check_groups(reg)


def _check_optim(cfg: DictConfig | Config) -> None:
    """SGD's learning rate, momentum, weight decay and warmup."""
    opt = cfg.optim
    _one_of("optim.name", opt.name, OPTIMIZERS)
    _positive("optim.base_lr", opt.base_lr)
    _check_range("optim.momentum", opt.momentum, 0.0, 1.0, True)
    _check_range("optim.weight_decay", opt.weight_decay, 0.0, None, False)
    _check_range("optim.warmup_epochs", opt.warmup_epochs, 0.0, None, False)


def _check_records(cfg: DictConfig | Config) -> None:
    """Keys that decide what is saved and when a run stops: checkpoints, logger, divergence,
    report metrics."""
    _at_least("checkpoint.every_steps", cfg.checkpoint.every_steps, 0, " (0: epoch ends only)")
    _one_of("logger.name", cfg.logger.name, LOGGERS)
    _positive("logger.init_timeout", cfg.logger.init_timeout, "> 0 seconds")
    div = cfg.divergence
    if div.factor is not None and not (math.isfinite(div.factor) and div.factor > 1):
        raise ConfigError(
            f"divergence.factor must be > 1 (times the first loss) or null, got {div.factor}"
        )
    _at_least("divergence.check_every", div.check_every, 1, " forwards")
    for metric in cfg.report.metrics:
        _one_of("report.metrics", metric, REPORT_METRICS)
    _check_claims(cfg.report.get("claims") or [])
    _check_published(cfg.report.get("published") or [])
    check_seeds_keys(cfg.report)


def check_seeds_keys(report: Any) -> None:
    """The keys of ``seeds=auto`` (``report.target_halfwidth`` .. ``report.seeds_per_round``)."""
    target = report.target_halfwidth
    if not (math.isfinite(target) and target >= 0):
        raise ConfigError(
            f"report.target_halfwidth must be a number of metric points >= 0, got {target}"
        )
    _at_least("report.max_seeds", report.max_seeds, 1)
    if report.max_jobs is not None:
        _at_least("report.max_jobs", report.max_jobs, 1, " (or null: no budget)")
    _at_least("report.seeds_per_round", report.seeds_per_round, 1)


def _check_claims(claims: Any) -> None:
    """``report.claims``: each a claim the Findings can check (``reports.claims``)."""
    from reports.claims import parse_claims

    items = [OmegaConf.to_container(c) if isinstance(c, DictConfig) else c for c in claims]
    try:
        parsed = parse_claims(items)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for i, claim in enumerate(parsed):
        _one_of(f"report.claims[{i}].metric", claim.metric, REPORT_METRICS)


def _check_published(entries: Any) -> None:
    """``report.published``: each a number of another budget the report can show
    (``reports.published``)."""
    from reports.published import parse_published

    items = [OmegaConf.to_container(e) if isinstance(e, DictConfig) else e for e in entries]
    try:
        parsed = parse_published(items)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for i, entry in enumerate(parsed):
        _one_of(f"report.published[{i}].metric", entry.metric, REPORT_METRICS)


_SECTIONS: tuple[Rule, ...] = (
    _check_run,
    _check_task,
    _check_data,
    _check_backbone,
    _check_regularizer,
    _check_optim,
    _check_records,
)


def validate(cfg: DictConfig | Config) -> None:
    """Check the rules a type cannot express. Raises :class:`ConfigError` on the first break."""
    for section in _SECTIONS:
        section(cfg)
