"""``backbone=timm``: any timm model as a backbone, its groups read from timm's ``feature_info``.

timm describes each model's stages in ``model.feature_info`` (module path, channels, reduction =
output stride). Group g is the part of the network at output stride ``2 ** (g + 1)`` (4, 8, 16,
32), as the DropBlock paper numbers ResNet's conv2_x..conv5_x; a stage at stride 2 or 64 belongs
to no group (as CSPDarknet-53's extra stage). timm lists only the *last* stage at each stride
(EfficientNet's ``blocks.4`` for stride 16, where ``blocks.3`` is at stride 16 too), so a group
is every sibling from the previous listed stage (exclusive) to its own (inclusive).

The *blocks* of a group are what regularizers are placed after (``layers.block_placement``):
inside each member, the children of the first module whose children are all of one class and
each hold two or more layers with weights (``layer3``'s Bottlenecks, ``blocks.3``'s
InvertedResiduals, a DenseBlock's DenseLayers, a RegStage's ``b1..bN``); a member with no such
list that holds two or more layers with weights is one block itself (a ViT ``Block``, a
DenseNet transition).
"""

from __future__ import annotations

import difflib
import functools

from torch import nn

from models.registry import BackboneSpec, GroupLayout

__all__ = ["TIMM_PREFIX", "create_timm_backbone", "timm_layout", "timm_spec"]

#: ``timm:<model name>``: how the registry and ``python -m models`` name a timm model.
TIMM_PREFIX = "timm:"
#: Output stride -> group number (the DropBlock paper's groups 1..4 of ResNet-50).
GROUP_OF_REDUCTION = {4: 1, 8: 2, 16: 3, 32: 4}


def check_model_name(model_name: str) -> None:
    """Raise ``ValueError`` naming ``model_name`` (and the closest timm names) if timm lacks it."""
    import timm

    if timm.is_model(model_name):
        return
    close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f'timm has no model {model_name!r}{hint} (`python -c "import timm; '
        f"print(timm.list_models('*{model_name[:6]}*'))\"` lists names)"
    )


def create_timm_backbone(model_name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """``timm.create_model(model_name, pretrained=False, num_classes=..., **kwargs)``.

    Random initialisation only: local weights come through ``backbone.checkpoint``
    (``models.checkpoint``); nothing is downloaded.
    """
    import timm

    check_model_name(model_name)
    for key in ("pretrained", "checkpoint_path", "pretrained_cfg_overlay"):
        if kwargs.get(key):
            raise ValueError(
                f"backbone.kwargs.{key}: the harness never downloads weights nor lets timm load "
                "a file unchecked; give local weights as backbone.checkpoint=<file>"
            )
    kwargs.pop("pretrained", None)
    model = timm.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)
    if not getattr(model, "feature_info", None):
        raise ValueError(
            f"timm model {model_name!r} does not describe its stages (no feature_info): its "
            "groups cannot be found"
        )
    return model


def _weighted_layers(module: nn.Module) -> int:
    return sum(1 for m in module.modules() if any(True for _ in m.parameters(recurse=False)))


#: Containers only: never a block themselves (ConvNeXt's ``downsample``, a stage's ``blocks``).
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_block_list(module: nn.Module) -> bool:
    classes = {type(child) for child in module.children()}
    return (
        len(classes) == 1
        and classes.isdisjoint(_CONTAINERS)
        and all(_weighted_layers(child) >= 2 for child in module.children())
    )


def _block_lists(module: nn.Module, path: str) -> list[str]:
    if _is_block_list(module):
        return [f"{path}.{name}" for name, _ in module.named_children()]
    return [
        b for name, child in module.named_children() for b in _block_lists(child, f"{path}.{name}")
    ]


def _blocks(module: nn.Module, path: str) -> list[str]:
    """The block paths of one group member (see the module docstring)."""
    found = _block_lists(module, path)
    if found or type(module) in _CONTAINERS or _weighted_layers(module) < 2:
        return found
    return [path]


def _segment(model: nn.Module, previous: str | None, tap: str) -> list[str]:
    """The paths of ``tap`` and its siblings after ``previous`` (all before it when ``previous``
    is not a sibling)."""
    parent, _, own = tap.rpartition(".")
    siblings = [
        name for name, _ in (model.get_submodule(parent) if parent else model).named_children()
    ]
    end = siblings.index(own) + 1
    start = 0
    if previous is not None and previous.rpartition(".")[0] == parent:
        start = siblings.index(previous.rpartition(".")[2]) + 1
    prefix = f"{parent}." if parent else ""
    return [f"{prefix}{name}" for name in siblings[start:end]]


def timm_layout(model: nn.Module) -> GroupLayout:
    """Groups 1..4 of a timm model from its ``feature_info`` (the module docstring says how)."""
    paths: dict[int, str] = {}
    members: dict[int, list[str]] = {}
    previous = None
    for info in model.feature_info:
        module, reduction = info["module"], int(info["reduction"])
        group = GROUP_OF_REDUCTION.get(reduction)
        if group is not None:
            members.setdefault(group, []).extend(_segment(model, previous, module))
            paths[group] = module
        previous = module
    blocks = {
        group: tuple(b for path in names for b in _blocks(model.get_submodule(path), path))
        for group, names in members.items()
    }
    return GroupLayout(paths=paths, blocks=blocks)


def timm_spec(name: str) -> BackboneSpec:
    """The registry spec of ``timm:<model name>`` (``models.registry.register_family``)."""
    model_name = name[len(TIMM_PREFIX) :]
    check_model_name(model_name)
    return BackboneSpec(
        name=name,
        builder=functools.partial(create_timm_backbone, model_name),
        groups={},
        description=f"timm's {model_name}, groups from its feature_info",
        locate=timm_layout,
    )
