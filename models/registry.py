"""The backbone registry: one builder and one group map per name.

Modelled on timm's ``_registry.py``: a decorator registers a builder under a name, a duplicate
name raises, and an unknown name lists the names that exist (with the closest matches).

A *group* is a stage of the backbone numbered 1..4 as in the DropBlock paper (ResNet conv2_x ..
conv5_x). Every backbone maps each group to the module path of that stage, so regularizers are
placed by group on any backbone. A backbone whose groups depend on how it is built (a Darknet
cfg) registers with ``groups=None``; its models report their own map through ``group_modules()``
and ``group_paths()`` methods.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = [
    "BackboneSpec",
    "create_backbone",
    "get_spec",
    "group_modules",
    "group_paths",
    "list_backbones",
    "register_backbone",
]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and where its groups are."""

    name: str
    builder: Callable[..., nn.Module]
    #: group number (1..4) -> dotted module path of that stage inside the built model; empty
    #: when the built model reports its own groups (``group_modules()``, ``group_paths()``).
    groups: dict[int, str]
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    groups: dict[int, str] | None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_classes, **kwargs) -> nn.Module`` under its function name.

    ``groups=None``: the built model maps its own groups (methods ``group_modules()`` and
    ``group_paths()``), as a Darknet cfg network does.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        if groups is not None and sorted(groups) != [1, 2, 3, 4]:
            raise ValueError(f"backbone {name!r} must map groups 1..4, got {sorted(groups)}")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = BackboneSpec(name, fn, dict(groups or {}), doc[0] if doc else "")
        return fn

    return decorator


def list_backbones() -> list[str]:
    """Names of every registered backbone, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name``; an unknown name raises with the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown backbone {name!r}; known: {', '.join(list_backbones())}{hint}"
        ) from None


def create_backbone(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build the named backbone with a classifier of ``num_classes`` outputs, randomly initialised."""
    return get_spec(name).builder(num_classes=num_classes, **kwargs)


def group_modules(model: nn.Module, name: str) -> dict[int, nn.Module]:
    """The stage module of each group 1..4 of a model built by :func:`create_backbone`."""
    if callable(getattr(model, "group_modules", None)):
        return model.group_modules()
    return {g: model.get_submodule(path) for g, path in get_spec(name).groups.items()}


def group_paths(model: nn.Module, name: str) -> dict[int, str]:
    """The dotted path of each group 1..4 of a model built by :func:`create_backbone`."""
    if callable(getattr(model, "group_paths", None)):
        return model.group_paths()
    return dict(get_spec(name).groups)
