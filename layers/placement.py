"""Placing a regularizer into the groups of a backbone.

DropBlock (Ghiasi, Lin and Le, NeurIPS 2018, arXiv 1810.12890), official TF code
``resnet_model.py::bottleneck_block``: in each residual block of groups 3 and 4 a DropBlock follows
every BatchNorm of the residual branch (after the ReLU there; ReLU commutes with a non-negative
mask-and-rescale, so placing it straight after the BN is the same function) and one sits on the
shortcut (after the projection BN when there is one, on the identity otherwise).

Other regularizers (ordinary dropout, for a like-for-like comparison) use the same positions.
Placement works on any block that keeps its BNs as submodules and its projection in a
``downsample`` attribute (timm's and torchvision's ResNet blocks, the project's TinyResNet).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

__all__ = ["place_in_groups", "place_in_resnet_block"]

#: Builds one regularizer module for a position; called once per position.
LayerFactory = Callable[[], nn.Module]


def _wrap_batchnorms(
    block: nn.Module, prefix: str, factory: LayerFactory, placed: list[str]
) -> None:
    for child_name, child in list(block.named_children()):
        path = f"{prefix}.{child_name}"
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(block, child_name, nn.Sequential(child, factory()))
            placed.append(path)
        else:
            _wrap_batchnorms(child, path, factory, placed)


def place_in_resnet_block(block: nn.Module, block_path: str, factory: LayerFactory) -> list[str]:
    """After every BN of ``block`` and on its shortcut (after the projection BN, or on the
    identity as ``block.downsample``); returns the positions' paths."""
    placed: list[str] = []
    _wrap_batchnorms(block, block_path, factory, placed)
    if hasattr(block, "downsample") and block.downsample is None:
        block.downsample = factory()
        placed.append(f"{block_path}.downsample")
    return placed


def place_in_groups(
    groups: Mapping[int, nn.Module],
    group_paths: Mapping[int, str],
    factories: Mapping[int, LayerFactory],
) -> list[str]:
    """Insert ``factories[g]()`` after every BN and on the shortcut of every block of group g.

    Args:
        groups: group number -> stage module (an ``nn.Sequential`` of residual blocks).
        group_paths: group number -> dotted path of that stage, used in the returned names.
        factories: group number -> a zero-argument builder of the regularizer module.

    Returns:
        The dotted paths of every position that received a regularizer, in model order. A BN
        position is the BN's own path; a shortcut is ``<block>.downsample``.
    """
    placed: list[str] = []
    for group, factory in sorted(factories.items()):
        if group not in groups:
            raise ValueError(
                f"group {group} does not exist; the backbone has groups {sorted(groups)}"
            )
        for block_name, block in groups[group].named_children():
            placed += place_in_resnet_block(block, f"{group_paths[group]}.{block_name}", factory)
    return placed
