"""From a ``regularizer`` config to modules placed in a backbone's groups.

``none`` places nothing. ``dropout`` places element-wise ``nn.Dropout(p)`` (Srivastava et al.,
JMLR 2014) at DropBlock's positions with each group's ``p`` (see ``layers.placement``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from layers.placement import LayerFactory, place_in_groups

__all__ = ["apply_regularizer", "regularizer_factories"]


def regularizer_factories(name: str, groups: Mapping[str, Any]) -> dict[int, LayerFactory]:
    """One module builder per group that has something to place (p > 0)."""
    factories: dict[int, LayerFactory] = {}
    if name == "none":
        return factories
    for group_key, settings in groups.items():
        p = float(settings["p"])
        if p <= 0:
            continue
        if name == "dropout":
            factories[int(group_key)] = lambda p=p: nn.Dropout(p)
        else:
            raise ValueError(f"regularizer.name {name!r} has no layer to place")
    return factories


def apply_regularizer(
    model: nn.Module, backbone: str, name: str, group_settings: Mapping[str, Any]
) -> list[str]:
    """Place the named regularizer into ``model`` (built as ``backbone``) in place.

    Returns the dotted paths of the positions that received a layer.
    """
    from models import get_spec, group_modules

    return place_in_groups(
        group_modules(model, backbone),
        get_spec(backbone).groups,
        regularizer_factories(name, group_settings),
    )
