"""The network a task trains: a registered backbone with the regularizer placed in its groups."""

from __future__ import annotations

from typing import Any

from torch import nn

from models import create_backbone, group_modules, group_paths
from regularizers.placement import apply_regularizer

__all__ = ["build_model"]


def build_model(cfg: Any, num_classes: int) -> tuple[nn.Module, list[str]]:
    """The backbone with the regularizer placed in its groups; returns it and the placements."""
    model = create_backbone(cfg.backbone.name, num_classes=num_classes, **dict(cfg.backbone.kwargs))
    reg = cfg.regularizer
    # The regularizer's own keys (its schema's: DropBlock's scope, ..., CBN's window, ...).
    options = {key: reg[key] for key in reg if key not in ("name", "groups")}
    # The group map comes from the model registry; the placement itself knows no backbone.
    name = cfg.backbone.name
    groups, paths = group_modules(model, name), group_paths(model, name)
    placements = apply_regularizer(
        model, groups, paths, reg.name, reg.groups, options, input_size=cfg.data.image_size
    )
    return model, placements
