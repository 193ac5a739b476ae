"""The PyTorch modules of Darknet's layers, one per ``[section]`` kind.

Semantics follow AlexeyAB/darknet (``src/*_layer.c``, ``blas.c``):

- ``[convolutional]``: ``pad=1`` means ``padding = size // 2``, which a dilated conv applies
  ``dilation`` times (``im2col_cpu_ext`` gets ``l.pad * l.dilation``: same size); no bias when batch-normalised;
  ``batch_normalize=2`` (or ``cbn=1``) is CmBN, the project's
  :class:`~layers.cross_iteration_bn.CrossIterationBatchNorm2d` with ``mode="cmbn"``; BN eps 1e-5
  and momentum 0.1 (Darknet's CPU rolling update ``0.9 * old + 0.1 * new``); leaky slope 0.1.
- ``[route]``: concatenation of the ``group_id``-th of ``groups`` channel slices of each input
  (``route_layer.c``).
- ``[shortcut]``: previous output plus each ``from`` output, then the activation. A source with
  fewer channels is added into the first channels only, one with more contributes its first
  channels (``blas.c``). A source of another size is sampled as in ``shortcut_cpu`` (the Darknet
  these cfgs were trained with, before AlexeyAB's 2020 multi-input rewrite): every
  ``stride = w_from / w_out``-th pixel of a larger source is added, a smaller one is added into
  every ``w_out / w_from``-th pixel (Darknet's ResNet-50 downsamples its shortcuts so).
- ``[maxpool]``: ``size`` defaults to ``stride``, ``padding`` to ``size - 1``; output
  ``(w + padding - size) / stride + 1`` with the window offset by ``-padding / 2``
  (``maxpool_layer.c``); out-of-map positions never win.
- ``[avgpool]``: global average to ``C x 1 x 1``. ``[connected]``: a linear layer on the
  flattened input (C, H, W order, as Darknet).
- ``[dropout]``: ``nn.Dropout(probability)``, or with ``dropblock=1`` the project's
  :class:`~layers.drop_block.DropBlock2d` with Darknet's options (see :func:`dropblock_options`).
  Darknet's dropout works in place on the previous layer's output, so a later ``[route]`` or
  ``[shortcut]`` that reads that layer sees the dropped values; so it does here.
- ``[scale_channels]`` (EfficientNet's squeeze-excitation, ``scale_channels_layer.c``): the
  ``from`` layer's output times the previous output, a ``C x 1 x 1`` per-channel scale (or with
  ``scale_wh=1`` a ``1 x H x W`` per-position scale), then the activation; the output has the
  ``from`` layer's shape.
- ``[upsample]`` (``upsample_layer.c``): each pixel repeated ``stride x stride`` times, times
  ``scale``; a negative stride downsamples: each ``stride x stride`` block summed, times
  ``scale``.
- ``[softmax]`` and ``[cost]``: the harness's loss is cross-entropy on logits, which is
  Darknet's softmax layer's own loss, so the network returns logits (divided by the softmax
  ``temperature``) and ``[cost]`` passes them through.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.cross_iteration_bn import CrossIterationBatchNorm2d

__all__ = [
    "ACTIVATIONS",
    "BN_EPS",
    "BN_MOMENTUM",
    "Connected",
    "Cost",
    "DarknetConv",
    "DarknetGELU",
    "GlobalAvgPool",
    "MaxPoolDark",
    "Route",
    "ScaleChannels",
    "Shortcut",
    "Softmax",
    "Upsample",
]


class DarknetGELU(nn.Module):
    """Darknet's ``gelu``: the tanh approximation with Darknet's rounded constants.

    AlexeyAB ``activations.h`` ``gelu_activate`` (and ``activation_kernels.cu``, the same on the
    GPU): ``0.5 * x * (1 + tanh(0.797885 * x + 0.035677 * x^3))``. That is
    ``nn.GELU(approximate="tanh")`` (``sqrt(2/pi) = 0.7978845608...``, ``0.044715 * sqrt(2/pi)``)
    up to the constants' rounding, not the exact erf form, so it is written out here.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(0.797885 * x + 0.035677 * x.pow(3)))


#: Darknet activation name -> module builder (``activations.c``; leaky's slope is 0.1).
ACTIVATIONS = {
    "linear": nn.Identity,
    "leaky": lambda: nn.LeakyReLU(0.1),
    "relu": nn.ReLU,
    "logistic": nn.Sigmoid,
    "mish": nn.Mish,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "relu6": nn.ReLU6,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": DarknetGELU,
}

#: Darknet's batch-norm numerics: eps 1e-5, rolling update 0.9 * old + 0.1 * new.
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


class DarknetConv(nn.Module):
    """``[convolutional]``: conv, optional BN (``bn``), activation (``act``).

    ``batch_normalize``: 0 none (the conv has a bias), 1 BatchNorm, 2 CmBN.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int],
        padding: int,
        *,
        groups: int = 1,
        dilation: int = 1,
        batch_normalize: int = 0,
        act: nn.Module,
    ) -> None:
        super().__init__()
        self.batch_normalize = batch_normalize
        self.conv = nn.Conv2d(
            in_channels, filters, size, stride, padding, dilation, groups, bias=not batch_normalize
        )
        if batch_normalize == 2:
            self.bn: nn.Module = CrossIterationBatchNorm2d(
                filters, mode="cmbn", eps=BN_EPS, momentum=BN_MOMENTUM
            )
        elif batch_normalize:
            self.bn = nn.BatchNorm2d(filters, eps=BN_EPS, momentum=BN_MOMENTUM)
        else:
            self.bn = nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Route(nn.Module):
    """``[route]``: channel slice ``group_id`` of ``groups`` of each source, concatenated."""

    def __init__(self, sources: list[int], groups: int, group_id: int) -> None:
        super().__init__()
        self.sources, self.groups, self.group_id = sources, groups, group_id

    def forward(self, outputs: dict[int, torch.Tensor]) -> torch.Tensor:
        parts = []
        for index in self.sources:
            x = outputs[index]
            if self.groups > 1:
                width = x.shape[1] // self.groups
                x = x[:, self.group_id * width : (self.group_id + 1) * width]
            parts.append(x)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return f"layers={self.sources}, groups={self.groups}, group_id={self.group_id}"


def _add_into(out: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """``out + add`` with Darknet's rules for a source of other channels or size (``shortcut_cpu``)."""
    if out.shape == add.shape:
        return out + add
    c = min(out.shape[1], add.shape[1])
    if out.shape[2:] == add.shape[2:]:
        summed = out[:, :c] + add[:, :c]
        return summed if c == out.shape[1] else torch.cat([summed, out[:, c:]], dim=1)
    (h_out, w_out), (h_add, w_add) = out.shape[2:], add.shape[2:]
    stride = max(1, w_add // w_out)  # a larger source: every stride-th pixel of it
    sample = max(1, w_out // w_add)  # a smaller source: into every sample-th pixel of out
    h, w = min(h_out, h_add), min(w_out, w_add)
    source = add[:, :c, : h * stride : stride, : w * stride : stride]
    added = out.new_zeros(out.shape[0], c, h_out, w_out)
    added[:, :, : h * sample : sample, : w * sample : sample] = source
    if c == out.shape[1]:
        return out + added
    return torch.cat([out[:, :c] + added, out[:, c:]], dim=1)


class Shortcut(nn.Module):
    """``[shortcut]``: ``x + outputs[from]`` over the channels both have, then the activation."""

    def __init__(self, sources: list[int], act: nn.Module) -> None:
        super().__init__()
        self.sources, self.act = sources, act

    def forward(self, x: torch.Tensor, outputs: dict[int, torch.Tensor]) -> torch.Tensor:
        out = x
        for index in self.sources:
            out = _add_into(out, outputs[index])
        return self.act(out)

    def extra_repr(self) -> str:
        return f"from={self.sources}"


class ScaleChannels(nn.Module):
    """``[scale_channels]``: ``outputs[from] * x`` (x per channel, or per position), activated."""

    def __init__(self, source: int, scale_wh: bool, act: nn.Module) -> None:
        super().__init__()
        self.sources, self.scale_wh, self.act = [source], scale_wh, act

    def forward(self, x: torch.Tensor, outputs: dict[int, torch.Tensor]) -> torch.Tensor:
        # x is (N, C, 1, 1), or (N, 1, H, W) with scale_wh: broadcasting is Darknet's indexing
        return self.act(outputs[self.sources[0]] * x)

    def extra_repr(self) -> str:
        return f"from={self.sources[0]}, scale_wh={self.scale_wh}"


class Upsample(nn.Module):
    """``[upsample]``: nearest upsampling by ``stride`` times ``scale``; ``reverse`` sums blocks."""

    def __init__(self, stride: int, scale: float, reverse: bool) -> None:
        super().__init__()
        self.stride, self.scale, self.reverse = stride, scale, reverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if self.reverse:  # upsample_cpu(..., forward=0): out[i/s] += scale * in[i]
            n, c, h, w = x.shape
            x = x[:, :, : h // s * s, : w // s * s]
            return self.scale * x.reshape(n, c, h // s, s, w // s, s).sum(dim=(3, 5))
        return self.scale * x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)

    def extra_repr(self) -> str:
        return f"stride={'-' if self.reverse else ''}{self.stride}, scale={self.scale}"


class MaxPoolDark(nn.Module):
    """``[maxpool]`` with Darknet's padding: ``padding // 2`` before, the rest after."""

    def __init__(self, size: int, stride: tuple[int, int], padding: int) -> None:
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            before = self.padding // 2
            after = self.padding - before
            x = F.pad(x, (before, after, before, after), value=-math.inf)
        return F.max_pool2d(x, self.size, self.stride)

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool(nn.Module):
    """``[avgpool]``: the mean over each channel's map, ``(N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Connected(nn.Module):
    """``[connected]``: linear layer on the flattened input, optional BN, activation."""

    def __init__(self, inputs: int, outputs: int, batch_normalize: int, act: nn.Module) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, outputs, bias=not batch_normalize)
        self.bn: nn.Module = (
            nn.BatchNorm1d(outputs, eps=BN_EPS, momentum=BN_MOMENTUM)
            if batch_normalize
            else nn.Identity()
        )
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.linear(x.flatten(1)))).view(x.shape[0], -1, 1, 1)


class Softmax(nn.Module):
    """``[softmax]``: returns logits / temperature; the harness's cross-entropy does the softmax."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.temperature == 1 else x / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class Cost(nn.Identity):
    """``[cost]``: the loss is the harness's; the scores pass through."""
