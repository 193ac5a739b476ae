"""The spatial size of the feature maps inside each group, measured without computing anything.

The backbone is built and run on PyTorch's ``meta`` device, where a forward pass propagates
shapes only (no memory, no arithmetic), so even ResNet-50 at 224x224 is measured in well under
a second. Used to reject a DropBlock block larger than every map it would be placed on.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from models.registry import create_backbone, group_blocks, group_modules

__all__ = ["group_map_sizes"]


@functools.lru_cache(maxsize=32)
def _measure(name: str, input_size: int, kwargs: tuple[tuple[str, object], ...]) -> dict:
    with torch.device("meta"):
        model = create_backbone(name, num_classes=10, **dict(kwargs))
    sizes: dict[int, list[tuple[int, int]]] = {}
    hooks = []

    def record(_m: nn.Module, _i: tuple, out: object, group: int) -> None:
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            sizes[group].append(tuple(out.shape[-2:]))

    blocks = group_blocks(model, name) or {}
    for group, module in group_modules(model, name).items():
        sizes[group] = []
        watched = [model.get_submodule(path) for path in blocks.get(group, ())]
        watched += [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for child in watched:
            hooks.append(child.register_forward_hook(functools.partial(record, group=group)))
    model.eval()
    with torch.no_grad():
        model(torch.empty(1, 3, input_size, input_size, device="meta"))
    for hook in hooks:
        hook.remove()
    return {g: sorted(set(s)) for g, s in sizes.items()}


def group_map_sizes(
    name: str, input_size: int, **kwargs: object
) -> dict[int, list[tuple[int, int]]]:
    """Group number -> the distinct ``(H, W)`` of the maps after each BatchNorm in that group.

    These are the positions where ``layers.placement`` puts a regularizer (after every BN of a
    block; the shortcut carries the block's output size, which is among them), and on a network
    whose blocks are found generically (timm) the blocks' outputs; only 4-D (N x C x H x W)
    outputs count.
    """
    measured = _measure(name, input_size, tuple(sorted(kwargs.items())))
    return {g: list(s) for g, s in measured.items()}
