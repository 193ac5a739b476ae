"""The network a config describes: a registered backbone (or any timm model), local pretrained
weights if given, and the regularizer placed in its groups (built by the tasks, and on the
``meta`` device by preflight to check the placement)."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from models import backbone_id, create_backbone, group_blocks, group_modules, group_paths
from regularizers.placement import apply_regularizer

__all__ = ["backbone_kwargs", "backbone_name", "build_model"]

log = logging.getLogger(__name__)


def backbone_name(cfg: Any) -> str:
    """The registry name of ``cfg.backbone``: ``resnet50``, or ``timm:convnext_atto`` for
    ``backbone=timm backbone.name=convnext_atto``."""
    return backbone_id(cfg.backbone.name, cfg.backbone.get("source", "registry"))


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def backbone_kwargs(cfg: Any) -> dict[str, Any]:
    """``backbone.kwargs`` as plain Python, lists as tuples (timm's ``depths=(1, 1, 1, 1)``;
    hashable, so the feature-map measurement can cache on them)."""
    kwargs = cfg.backbone.kwargs
    plain = OmegaConf.to_container(kwargs, resolve=True) if OmegaConf.is_config(kwargs) else kwargs
    return {key: _frozen(value) for key, value in dict(plain).items()}


def build_model(cfg: Any, num_classes: int) -> tuple[nn.Module, list[str]]:
    """The backbone with the regularizer placed in its groups; returns it and the placements.

    ``backbone.checkpoint`` is loaded before anything is placed, so its keys are the network's
    own (a DropBlock wrapper would rename them)."""
    name = backbone_name(cfg)
    model = create_backbone(name, num_classes=num_classes, **backbone_kwargs(cfg))
    if cfg.backbone.get("checkpoint"):
        from models.checkpoint import load_checkpoint

        report = load_checkpoint(model, str(cfg.backbone.checkpoint))
        log.info(
            "backbone.checkpoint: %d tensors from %s%s", report.loaded, report.path,
            f"; re-initialised for {num_classes} classes: {', '.join(report.reinitialised)}"
            if report.reinitialised else "",
        )  # fmt: skip
    reg = cfg.regularizer
    # The regularizer's own keys (its schema's: DropBlock's scope, ..., CBN's window, ...).
    options = {key: reg[key] for key in reg if key not in ("name", "groups")}
    # The group map comes from the model registry; the placement itself knows no backbone.
    groups, paths = group_modules(model, name), group_paths(model, name)
    placements = apply_regularizer(
        model,
        groups,
        paths,
        reg.name,
        reg.groups,
        options,
        input_size=cfg.data.image_size,
        group_blocks=group_blocks(model, name),
    )
    return model, placements
