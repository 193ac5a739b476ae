"""The backbone registry: one builder and one group map per name.

Modelled on timm's ``_registry.py``: a decorator registers a builder under a name, a duplicate
name raises, and an unknown name lists the names that exist (with the closest matches).

A *group* is a stage of the backbone numbered 1..4 as in the DropBlock paper (ResNet conv2_x ..
conv5_x). Every backbone maps each group to the module path of that stage, so regularizers are
placed by group on any backbone. A backbone whose groups depend on how it is built (a Darknet
cfg) registers with ``groups=None``; its models report their own map through ``group_modules()``
and ``group_paths()`` methods. A *family* (``timm:<model name>``, any timm model) resolves names
by prefix; its spec finds the groups of a built model with a ``locate`` function, which also
lists the blocks of each group (``group_blocks``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = [
    "BackboneSpec",
    "GroupLayout",
    "backbone_id",
    "backbone_sources",
    "create_backbone",
    "get_spec",
    "group_blocks",
    "group_modules",
    "group_paths",
    "list_backbones",
    "register_backbone",
    "register_family",
]


@dataclass(frozen=True)
class GroupLayout:
    """Where a built model's groups are, for a backbone that finds them in the model."""

    #: Group -> the module whose output is the group's feature map.
    paths: dict[int, str]
    #: Group -> the dotted paths of the blocks regularizers are placed after, in model order.
    blocks: dict[int, tuple[str, ...]]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and where its groups are."""

    name: str
    builder: Callable[..., nn.Module]
    #: group number (1..4) -> dotted module path of that stage inside the built model; empty
    #: when the built model reports its own groups (``group_modules()``, ``group_paths()``).
    groups: dict[int, str]
    description: str = ""
    #: Finds the groups (and their blocks) of a built model, for a family such as ``timm:``.
    locate: Callable[[nn.Module], GroupLayout] | None = None


_REGISTRY: dict[str, BackboneSpec] = {}
#: Name prefix (``"timm:"``) -> the spec of one name of that family (``"timm:resnet50"``).
_FAMILIES: dict[str, Callable[[str], BackboneSpec]] = {}


def register_family(prefix: str, resolve: Callable[[str], BackboneSpec]) -> None:
    """Names starting with ``prefix`` resolve through ``resolve(name)``, which raises
    ``ValueError`` for a name the family lacks."""
    if prefix in _FAMILIES:
        raise ValueError(f"backbone family {prefix!r} is registered twice")
    _FAMILIES[prefix] = resolve


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


def backbone_sources() -> list[str]:
    """What ``backbone.source`` may be: ``registry`` and each family (``timm``)."""
    return ["registry", *(prefix.rstrip(":") for prefix in _FAMILIES)]


def backbone_id(name: str, source: str = "registry") -> str:
    """The registry name of ``backbone.name`` from ``backbone.source``: ``resnet50`` from the
    registry, ``timm:convnext_atto`` from timm."""
    if source == "registry":
        return name
    if f"{source}:" not in _FAMILIES:
        raise ValueError(f"unknown backbone source {source!r}; known: {backbone_sources()}")
    return f"{source}:{name}"


def list_backbones() -> list[str]:
    """Names of every registered backbone, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name`` (or resolved by its family's prefix); an unknown name
    raises with the known names."""
    for prefix, resolve in _FAMILIES.items():
        if name.startswith(prefix):
            return resolve(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        families = "".join(f"; any {p}<name>" for p in _FAMILIES)
        raise ValueError(
            f"unknown backbone {name!r}; known: {', '.join(list_backbones())}{families}{hint}"
        ) from None


def create_backbone(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build the named backbone with a classifier of ``num_classes`` outputs, randomly initialised."""
    return get_spec(name).builder(num_classes=num_classes, **kwargs)


def group_modules(model: nn.Module, name: str) -> dict[int, nn.Module]:
    """The stage module of each group 1..4 of a model built by :func:`create_backbone`."""
    if callable(getattr(model, "group_modules", None)):
        return model.group_modules()
    return {g: model.get_submodule(path) for g, path in group_paths(model, name).items()}


def group_paths(model: nn.Module, name: str) -> dict[int, str]:
    """The dotted path of each group 1..4 of a model built by :func:`create_backbone`."""
    if callable(getattr(model, "group_paths", None)):
        return model.group_paths()
    spec = get_spec(name)
    return dict(spec.locate(model).paths) if spec.locate is not None else dict(spec.groups)


def group_blocks(model: nn.Module, name: str) -> dict[int, tuple[str, ...]] | None:
    """Group -> its block paths, for a backbone whose groups are found in the model (a timm
    model); ``None`` for one whose stages are its blocks' parents (the curated backbones)."""
    spec = get_spec(name)
    return dict(spec.locate(model).blocks) if spec.locate is not None else None
