"""Turning a model's BatchNorm layers into Cross-Iteration BN bound to their convolutions.

Which convolution feeds which BatchNorm is found by running one forward pass in eval mode and
matching tensors: a BN is bound to the convolution whose output object is the BN's input. A BN
fed by anything else (an addition, an activation, a pooling) cannot be compensated in the weights
of one convolution and is reported by name.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from layers.cross_iteration_bn import CrossIterationBatchNorm2d
from layers.tracing import traced_forward

__all__ = ["convert_to_cbn", "find_conv_bn_pairs", "other_norm_layers"]

#: Class names of normalisation layers: LayerNorm, LayerNorm2d, GroupNorm, RmsNorm, GroupNormAct...
_NORM_NAME = re.compile(r"Norm(Act)?(\dd)?$")


def find_conv_bn_pairs(
    model: nn.Module, example_input: torch.Tensor
) -> tuple[dict[str, str], list[str]]:
    """Map each BatchNorm2d's path to the path of the Conv2d that feeds it.

    Returns:
        (pairs, unbound): ``{bn_path: conv_path}`` and the BN paths fed by something else.
    """
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    feeds: dict[str, str | None] = {}
    hooks = []

    def on_conv(module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        produced[id(output)] = (names[module], output)  # keep the tensor alive: ids stay unique

    def on_bn(module: nn.Module, args: tuple) -> None:
        source = produced.get(id(args[0]))
        feeds[names[module]] = source[0] if source is not None and source[1] is args[0] else None

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(on_bn))
    traced_forward(model, example_input, hooks)
    all_bns = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    pairs = {bn: feeds[bn] for bn in all_bns if feeds.get(bn)}
    unbound = [bn for bn in all_bns if not feeds.get(bn)]
    return pairs, unbound


def convert_to_cbn(
    model: nn.Module,
    window: int = 4,
    burnin: int = 0,
    mode: str = "cbn",
    example_input: torch.Tensor | None = None,
    keep_unbound: bool = False,
) -> list[str]:
    """Replace every BatchNorm2d fed by a convolution with a bound CrossIterationBatchNorm2d.

    Parameters, buffers (running statistics) and eps/momentum carry over; the activation and
    dropout that timm's ``BatchNormAct2d`` fuses after the norm are kept after the CBN. Raises
    ``ValueError`` naming every BatchNorm that no convolution feeds (nothing is changed then),
    unless ``keep_unbound``: those stay BatchNorm (DenseNet's norms after a concatenation).

    Args:
        model: any module; changed in place.
        window, burnin, mode: as :class:`CrossIterationBatchNorm2d`.
        example_input: one input for the tracing forward (default ``zeros(1, 3, 64, 64)``).

    Returns:
        The paths of the converted layers.
    """
    device = next(model.parameters()).device
    example = (
        example_input if example_input is not None else torch.zeros(1, 3, 64, 64, device=device)
    )
    pairs, unbound = find_conv_bn_pairs(model, example)
    if unbound and not keep_unbound:
        raise ValueError(
            f"convert_to_cbn: no convolution feeds BatchNorm layer(s) {', '.join(unbound)}; CBN compensates in the weights of the convolution right before it"
        )
    converted = []
    for bn_path, conv_path in pairs.items():
        bn = model.get_submodule(bn_path)
        if isinstance(bn, CrossIterationBatchNorm2d):
            continue
        cbn = CrossIterationBatchNorm2d(
            bn.num_features,
            window=window,
            burnin=burnin,
            mode=mode,
            eps=bn.eps,
            momentum=bn.momentum,
            affine=bn.affine,
        )
        cbn.load_state_dict(bn.state_dict(), strict=False)
        cbn.to(device=bn.running_mean.device)
        cbn.bind(model.get_submodule(conv_path))
        replacement: nn.Module = cbn
        if isinstance(getattr(bn, "act", None), nn.Module):
            # timm's BatchNormAct2d fuses dropout and activation after the norm: keep them.
            replacement = nn.Sequential(cbn, getattr(bn, "drop", nn.Identity()), bn.act)
        parent_path, _, child = bn_path.rpartition(".")
        setattr(model.get_submodule(parent_path) if parent_path else model, child, replacement)
        converted.append(bn_path)
    return converted


def other_norm_layers(model: nn.Module) -> dict[str, list[str]]:
    """Normalisation layers that are not BatchNorm, by class name -> their paths (LayerNorm,
    LayerNorm2d, GroupNorm, RMSNorm, InstanceNorm...): what CBN cannot replace."""
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        kind = type(module).__name__
        if _NORM_NAME.search(kind) and not isinstance(module, nn.modules.batchnorm._BatchNorm):
            found.setdefault(kind, []).append(name)
    return found
