"""Backbones by name, each with a map of its groups 1..4 (see ``models.registry``)."""

from models import backbones as _backbones  # noqa: F401  (registers the builders)
from models.complexity import Complexity, measure_complexity
from models.darknet import backbone as _darknet  # noqa: F401  (registers backbone=darknet)
from models.registry import (
    BackboneSpec,
    GroupLayout,
    backbone_id,
    backbone_sources,
    create_backbone,
    get_spec,
    group_blocks,
    group_modules,
    group_paths,
    list_backbones,
    register_backbone,
    register_family,
)
from models.timm_backbone import TIMM_PREFIX, timm_spec

register_family(TIMM_PREFIX, timm_spec)  # ``timm:<any timm model name>``

__all__ = [
    "TIMM_PREFIX",
    "BackboneSpec",
    "Complexity",
    "GroupLayout",
    "backbone_id",
    "backbone_sources",
    "create_backbone",
    "get_spec",
    "group_blocks",
    "group_modules",
    "group_paths",
    "list_backbones",
    "measure_complexity",
    "register_backbone",
]
