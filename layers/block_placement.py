"""Placing a regularizer after the blocks of a group, on a network found generically (timm).

Two rules, chosen per block:

- **ResNet blocks** (timm's ``resnet.BasicBlock``/``Bottleneck``, also ResNeXt, SE-ResNet,
  ResNet-D): the DropBlock paper's rule of ``layers.placement`` (after every BN of the residual
  branch and on the shortcut), so ``timm:resnet50`` is placed as the curated ``resnet50``.
- **Every other block** (EfficientNet's and MobileNetV3's inverted residuals, RegNet's
  bottlenecks, DenseNet's dense layers, ConvNeXt's and CSPNet's blocks, a ViT block): after
  every BatchNorm inside the block that a convolution feeds (found by tracing one forward pass,
  ``layers.cbn_convert.find_conv_bn_pairs``) and after the block's output (the block is wrapped
  as ``Sequential(block, layer)``).

A BN position is recorded as the BN's path, a block output as the block's path, a shortcut as
``<block>.downsample``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from layers.cbn_convert import find_conv_bn_pairs
from layers.placement import place_in_resnet_block
from layers.tracing import traced_forward

__all__ = ["block_output_shapes", "is_resnet_block", "place_after_blocks"]

LayerFactory = Callable[[], nn.Module]

log = logging.getLogger(__name__)


def is_resnet_block(block: nn.Module) -> bool:
    """timm's ResNet blocks: the residual branch's BNs and a ``downsample`` shortcut."""
    return type(block).__module__ == "timm.models.resnet" and hasattr(block, "downsample")


def block_output_shapes(
    model: nn.Module, paths: Sequence[str], example_input: torch.Tensor
) -> dict[str, tuple[int, ...] | None]:
    """The output shape of each block in ``paths`` for one eval-mode forward (None: not a tensor)."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    hooks = []
    for path in paths:

        def record(_m: nn.Module, _args: tuple, out: object, path: str = path) -> None:
            shapes[path] = tuple(out.shape) if isinstance(out, torch.Tensor) else None

        hooks.append(model.get_submodule(path).register_forward_hook(record))
    traced_forward(model, example_input, hooks)
    return shapes


def _check_maps(
    blocks: Mapping[int, Sequence[str]], shapes: Mapping[str, tuple[int, ...] | None]
) -> None:
    for group, paths in sorted(blocks.items()):
        flat = [(p, shapes.get(p)) for p in paths if shapes.get(p) is None or len(shapes[p]) != 4]
        if flat:
            path, shape = flat[0]
            what = f"a tensor of shape {list(shape)}" if shape else "no single tensor"
            raise ValueError(
                f"group {group} has no 2-D feature maps to drop blocks from: its block {path} "
                f"outputs {what} (tokens, not N x C x H x W)"
                + (f", as do {len(flat) - 1} more of its blocks" if len(flat) > 1 else "")
            )


def _wrap(model: nn.Module, path: str, layer: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, nn.Sequential(model.get_submodule(path), layer))


def place_after_blocks(
    model: nn.Module,
    blocks: Mapping[int, Sequence[str]],
    factories: Mapping[int, LayerFactory],
    example_input: torch.Tensor,
    needs_maps: bool = False,
) -> list[str]:
    """Insert ``factories[g]()`` at the positions of every block of group g (module docstring).

    Args:
        model: changed in place; traced once with ``example_input`` (eval mode, no gradients).
        blocks: group number -> its block paths (``models.group_blocks``).
        factories: group number -> a zero-argument builder of the regularizer module.
        needs_maps: the layer needs N x C x H x W inputs (DropBlock): a group whose blocks output
            anything else (a ViT's tokens) raises ``ValueError`` naming the block.

    A group the network lacks (a ViT has no stride-32 group 4) is skipped with a warning; none
    of the groups existing is a ``ValueError``.

    Returns:
        The dotted paths of every position that received a regularizer, in model order.
    """
    chosen = {g: tuple(blocks[g]) for g in sorted(factories) if blocks.get(g)}
    missing = sorted(set(factories) - set(chosen))
    if missing and not chosen:
        raise ValueError(
            f"group(s) {missing} do not exist; the backbone has groups {sorted(blocks)}"
        )
    if missing:  # a ViT has no stride-32 group 4: place in the groups it has
        log.warning(
            "the backbone has no group %s (its groups: %s): nothing is placed there",
            ", ".join(map(str, missing)), sorted(blocks),
        )  # fmt: skip
    if needs_maps:
        paths = [p for group_paths in chosen.values() for p in group_paths]
        _check_maps(chosen, block_output_shapes(model, paths, example_input))
    conv_fed = set(find_conv_bn_pairs(model, example_input)[0])
    placed: list[str] = []
    for group, paths in chosen.items():
        factory = factories[group]
        for path in paths:
            block = model.get_submodule(path)
            if is_resnet_block(block):
                placed += place_in_resnet_block(block, path, factory)
                continue
            bns = [
                f"{path}.{name}"
                for name, _ in block.named_modules()
                if f"{path}.{name}" in conv_fed
            ]
            for bn_path in bns:
                _wrap(model, bn_path, factory())
            _wrap(model, path, factory())
            placed += [*bns, path]
    return placed
