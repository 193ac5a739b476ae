"""Darknet ``.weights`` files: read into and write from a :class:`DarknetNet`.

Layout (AlexeyAB/darknet ``parser.c`` ``load_weights_upto`` / ``save_weights_upto``): a header of
``int32 major, minor, revision``, then the images seen as ``uint64`` when ``major * 10 + minor
>= 2`` (``int32`` before), then float32 arrays layer by layer in cfg order:

- ``[convolutional]``: biases (BN beta, or the conv bias without BN); with BN (1 or 2) the scales
  (gamma), rolling mean and rolling variance; then the weights ``(n, c / groups, size, size)``.
- ``[connected]``: biases, weights ``(outputs, inputs)`` (transposed when major or minor > 1000),
  then with BN the scales, rolling mean and rolling variance.

Other layers hold no weights. Writing uses version 0.2.5 (``uint64`` seen), as Darknet does.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.darknet.build import DarknetNet
from models.darknet.layers import Connected, DarknetConv

__all__ = ["load_weights", "save_weights"]

VERSION = (0, 2, 5)


def _bn_of(layer: DarknetConv | Connected) -> nn.Module | None:
    bn = layer.bn
    if isinstance(bn, nn.Sequential):  # a regularizer placed after the BN wraps it
        bn = bn[0]
    return bn if isinstance(bn, nn.modules.batchnorm._BatchNorm) else None


def _tensors(net: DarknetNet) -> list[tuple[str, torch.Tensor]]:
    """Every tensor the file holds, in file order, with a name for error messages."""
    order: list[tuple[str, torch.Tensor]] = []
    for index, layer in enumerate(net.layers):
        if isinstance(layer, DarknetConv):
            bn = _bn_of(layer)
            prefix = f"layer {index} [convolutional]"
            if bn is not None:
                order += [
                    (f"{prefix} biases", bn.bias),
                    (f"{prefix} scales", bn.weight),
                    (f"{prefix} rolling_mean", bn.running_mean),
                    (f"{prefix} rolling_variance", bn.running_var),
                ]
            else:
                order.append((f"{prefix} biases", layer.conv.bias))
            order.append((f"{prefix} weights", layer.conv.weight))
        elif isinstance(layer, Connected):
            bn = _bn_of(layer)
            prefix = f"layer {index} [connected]"
            bias = bn.bias if bn is not None else layer.linear.bias
            order += [(f"{prefix} biases", bias), (f"{prefix} weights", layer.linear.weight)]
            if bn is not None:
                order += [
                    (f"{prefix} scales", bn.weight),
                    (f"{prefix} rolling_mean", bn.running_mean),
                    (f"{prefix} rolling_variance", bn.running_var),
                ]
    return order


@torch.no_grad()
def load_weights(net: DarknetNet, path: str | Path) -> tuple[int, int, int]:
    """Fill ``net`` from a Darknet ``.weights`` file; returns its (major, minor, revision).

    The images-seen counter goes to ``net.seen``. Raises ``ValueError`` naming the file when its
    size does not match the cfg (a different cfg, or another number of classes).
    """
    data = Path(path).read_bytes()
    if len(data) < 12:
        raise ValueError(f"{path}: not a Darknet .weights file (only {len(data)} bytes)")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    if major * 10 + minor >= 2:
        (seen,), offset = struct.unpack_from("<Q", data, 12), 20
    else:
        (seen,), offset = struct.unpack_from("<i", data, 12), 16
    transpose = major > 1000 or minor > 1000
    floats = np.frombuffer(data, dtype="<f4", offset=offset)
    order = _tensors(net)
    needed = sum(t.numel() for _, t in order)
    if floats.size != needed:
        raise ValueError(
            f"{path}: holds {floats.size:,} floats after its header, but {net.cfg_path} needs "
            f"{needed:,} (a different cfg, or another number of classes?)"
        )
    at = 0
    for name, tensor in order:
        chunk = torch.from_numpy(floats[at : at + tensor.numel()].copy())
        at += tensor.numel()
        if transpose and name.endswith("[connected] weights"):
            chunk = chunk.view(tensor.shape[1], tensor.shape[0]).t()
        tensor.copy_(chunk.view(tensor.shape).to(tensor.dtype))
    net.seen = int(seen)
    return major, minor, revision


@torch.no_grad()
def save_weights(net: DarknetNet, path: str | Path) -> None:
    """Write ``net`` as a Darknet ``.weights`` file (version 0.2.5, ``net.seen`` images seen)."""
    parts = [struct.pack("<3iQ", *VERSION, int(getattr(net, "seen", 0)))]
    for _name, tensor in _tensors(net):
        parts.append(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    Path(path).write_bytes(b"".join(parts))
