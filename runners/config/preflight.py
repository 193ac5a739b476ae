"""Every check that can stop a job before anything is written: the config layer's last word.

:func:`preflight` runs :func:`runners.config.rules.validate` (rules on values) and then the checks
that need more than the config: interpolations resolve, the requested device exists, the data
is there and usable (an ImageFolder split lists classes and images without a symlink loop,
``runners.data.image_folder``; a COCO annotation file passes ``runners.data.coco_validate``), the backbone
accepts its ``kwargs`` (a Darknet cfg its sane-value checks), the regularizer can be placed in
it (built on the ``meta`` device), a ``backbone.checkpoint`` fits it, its training-memory estimate is
within ``backbone.max_memory_gb`` (``models.memory``), and no DropBlock block is larger than
every feature map of the backbone. A block larger only than the maps of its own group is
clamped by the layer (SpatialDropout, as the paper's block 7 on 7x7 maps) and logged. Each failure is a :class:`ConfigError` with one line
naming the key and the value.

:func:`compose` is the same path from a list of overrides (Hydra's compose API plus
preflight), with Hydra's own composition errors turned into :class:`ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from runners.config import ConfigError, resolved_container, validate
from runners.config.hydra_errors import config_error

__all__ = ["CONF_DIR", "compose", "preflight"]

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _check_data_root(data: Any) -> None:
    if data.name == "coco":
        from runners.data.coco import coco_paths, validate_annotations

        try:
            coco_paths(data)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None
        try:
            validate_annotations(data)
        except ValueError as err:  # DataError: the file and the entry
            raise ConfigError(str(err)) from None
        return
    if data.name != "imagefolder":
        return
    from runners.data.image_folder import scan_split

    root = Path(str(data.root)).expanduser()
    classes = {}
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ConfigError(
                f"data.root: {root / split} is not a directory "
                f"(data=imagefolder needs <root>/train/<class>/* and <root>/val/<class>/*)"
            )
        try:
            classes[split], _ = scan_split(root / split)
        except ValueError as err:  # DataError: the folder at fault
            raise ConfigError(f"data.root: {err}") from None
    if classes["train"] != classes["val"]:
        only_train = sorted(set(classes["train"]) - set(classes["val"]))
        only_val = sorted(set(classes["val"]) - set(classes["train"]))
        raise ConfigError(
            f"data.root: {root}/train and {root}/val have different class folders "
            f"(only in train: {', '.join(only_train[:5]) or '-'}; "
            f"only in val: {', '.join(only_val[:5]) or '-'})"
        )


def _check_memory(cfg: Any) -> None:
    from models.memory import estimate_training_memory
    from runners.config.network import backbone_kwargs, backbone_name

    name, size = backbone_name(cfg), cfg.data.image_size
    mini_batch = max(1, cfg.batch // cfg.subdivisions)
    estimate = estimate_training_memory(name, size, **backbone_kwargs(cfg))
    total = estimate.total_bytes(mini_batch) / 1e9
    limit = cfg.backbone.max_memory_gb
    if total <= limit:
        return
    what = f"backbone {name}" + (f" ({cfg.backbone.cfg})" if cfg.backbone.cfg else "")
    raise ConfigError(
        f"{what} needs about {total:,.1f} GB to train at data.image_size={size} with a "
        f"mini-batch of {mini_batch} (weights, gradients and momentum "
        f"{estimate.state_bytes() / 1e9:,.1f} GB, the largest {estimate.largest_module} with "
        f"{estimate.largest_parameters:,} weights; layer outputs "
        f"{estimate.activation_bytes(mini_batch) / 1e9:,.1f} GB): over "
        f"backbone.max_memory_gb={limit:g}; if the machine has that much memory, raise "
        "backbone.max_memory_gb"
    )


def _check_placement(cfg: Any) -> None:
    """The regularizer can be placed in this backbone: built and placed on the ``meta`` device
    (shapes only), so a placement that cannot work (DropBlock on a ViT's tokens, CBN on a
    LayerNorm network) is one config error before anything is written. Only for backbones whose
    groups are found in the model (timm): the curated ones and Darknet cfgs always place."""
    import torch

    from models import get_spec
    from regularizers import registry
    from runners.config.network import backbone_name, build_model

    if not registry.get(cfg.regularizer.name).steps or get_spec(backbone_name(cfg)).locate is None:
        return  # nothing placed, or a curated / Darknet backbone, whose placements always work
    try:
        with torch.device("meta"):
            build_model(_without_checkpoint(cfg), num_classes=10)
    except ValueError as err:
        raise ConfigError(
            f"regularizer={cfg.regularizer.name} on backbone {backbone_name(cfg)}: {err}"
        ) from None


def _check_checkpoint(cfg: Any) -> None:
    """``backbone.checkpoint`` fits the backbone (names and shapes; a classifier of other classes
    is re-initialised at run time), checked on a ``meta``-device model before anything is written."""
    import torch

    from models import create_backbone
    from models.checkpoint import CheckpointError, fit_checkpoint
    from runners.config.network import backbone_kwargs, backbone_name

    if not cfg.backbone.get("checkpoint"):
        return
    with torch.device("meta"):
        model = create_backbone(backbone_name(cfg), num_classes=10, **backbone_kwargs(cfg))
    try:
        fit_checkpoint(model, str(cfg.backbone.checkpoint))
    except CheckpointError as err:
        raise ConfigError(f"backbone.checkpoint: {err}") from None


def _without_checkpoint(cfg: Any) -> Any:
    """``cfg`` with ``backbone.checkpoint`` unset: the placement check needs no weights."""
    if not cfg.backbone.get("checkpoint"):
        return cfg
    copy = cfg.copy()
    copy.backbone.checkpoint = None
    return copy


def _check_backbone_and_blocks(cfg: Any) -> None:
    from layers.regularizer import effective_group_settings
    from models.darknet.parse import DarknetCfgError
    from models.feature_maps import group_map_sizes
    from regularizers import registry
    from runners.config.network import backbone_kwargs, backbone_name

    name, size = backbone_name(cfg), cfg.data.image_size
    try:
        maps = group_map_sizes(name, size, **backbone_kwargs(cfg))
    except DarknetCfgError as err:  # the file and line of the layer at fault
        raise ConfigError(f"backbone.cfg: {err}") from None
    except Exception as err:  # whatever the builder raises, the key to fix is backbone.kwargs
        kwargs = backbone_kwargs(cfg)
        raise ConfigError(
            f"backbone {cfg.backbone.name!r} cannot be built with backbone.kwargs={kwargs} at "
            f"data.image_size={size}: {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from None
    _check_placement(cfg)
    if not registry.get(cfg.regularizer.name).places_blocks:
        return
    largest = max(max(h, w) for sides in maps.values() for h, w in sides)
    for group, settings in cfg.regularizer.groups.items():
        effective = effective_group_settings(settings)
        if effective["p"] <= 0 or effective["size_mode"] != "abs":
            continue  # nothing placed, or a fraction of the map, which always fits
        sides = maps[int(group)]
        block = effective["block_size"]
        if not all(block > max(h, w) for h, w in sides):
            continue
        key = "dropblock_size_abs" if settings.dropblock_size_abs is not None else "block_size"
        shown = ", ".join(f"{h}x{w}" for h, w in sides)
        where = f"for backbone {name} at data.image_size={size}"
        if block > largest:
            raise ConfigError(
                f"regularizer.groups.{group}.{key}={block} is larger than every feature map of "
                f"the backbone (the largest is {largest}x{largest} {where})"
            )
        # The layer clamps the block to the map (a whole-map block drops whole channels, as the
        # paper's block 7 does on ResNet-50's 7x7 group 4), so this runs; say so once.
        log.warning(
            "regularizer.groups.%s.%s=%s is larger than every feature map of group %s (%s %s): "
            "clamped to the map, so it drops whole channels (SpatialDropout)",
            group, key, block, group, shown, where,
        )  # fmt: skip


def preflight(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` if ``cfg`` cannot make a run; returns quietly otherwise."""
    from runners.tracking.environment import resolve_device

    try:
        resolved_container(cfg)
        validate(cfg)
    except OmegaConfBaseException as err:
        raise config_error(err) from None
    try:
        resolve_device(str(getattr(cfg.device, "value", cfg.device)))
    except ValueError as err:
        raise ConfigError(f"device: {err}") from None
    _check_data_root(cfg.data)
    _check_backbone_and_blocks(cfg)
    _check_checkpoint(cfg)
    _check_memory(cfg)


def compose(overrides: Sequence[str] = (), config_dir: Path = CONF_DIR) -> DictConfig:
    """The job config for ``overrides``, composed as ``run.py`` would and preflight-checked."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from runners.config import register_configs

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except Exception as err:  # composing is parsing user input: every failure is a config error
        raise config_error(err, overrides) from None
    preflight(cfg)
    return cfg
