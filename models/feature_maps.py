"""The spatial size of the feature maps inside each group, measured without computing anything.

The backbone is built and run on PyTorch's ``meta`` device, where a forward pass propagates
shapes only (no memory, no arithmetic), so even ResNet-50 at 224x224 is measured in well under
a second. Used to reject a DropBlock block larger than every map it would be placed on.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from models.registry import create_backbone, group_modules

__all__ = ["group_map_sizes"]


@functools.lru_cache(maxsize=32)
def _measure(name: str, input_size: int, kwargs: tuple[tuple[str, object], ...]) -> dict:
    with torch.device("meta"):
        model = create_backbone(name, num_classes=10, **dict(kwargs))
    sizes: dict[int, list[tuple[int, int]]] = {}
    hooks = []
    for group, module in group_modules(model, name).items():
        sizes[group] = []
        for child in module.modules():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                hooks.append(
                    child.register_forward_hook(
                        lambda _m, _i, out, g=group: sizes[g].append(tuple(out.shape[-2:]))
                    )
                )
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
    block; the shortcut carries the block's output size, which is among them).
    """
    measured = _measure(name, input_size, tuple(sorted(kwargs.items())))
    return {g: list(s) for g, s in measured.items()}
