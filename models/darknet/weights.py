"""Darknet ``.weights`` files: read into and write from a :class:`DarknetNet`.

Layout (AlexeyAB/darknet ``parser.c`` ``load_weights_upto`` / ``save_weights_upto``): a header of
``int32 major, minor, revision``, then the images seen as ``uint64`` when ``major * 10 + minor
>= 2`` (``int32`` before), then float32 arrays layer by layer in cfg order:

- ``[convolutional]``: biases (BN beta, or the conv bias without BN); with BN (1 or 2) the scales
  (gamma), rolling mean and rolling variance; then the weights ``(n, c / groups, size, size)``.
- ``[connected]``: biases, weights ``(outputs, inputs)`` (transposed when major or minor > 1000),
  then with BN the scales, rolling mean and rolling variance.

Other layers hold no weights. Writing uses version 0.2.5 (``uint64`` seen), as Darknet does.

A ``.weights`` file is untrusted data: its header is read and its size compared with what the
cfg needs (from the file's stat) before the body is read, so a short, cut-off or foreign file is
one :class:`WeightsFileError` naming it, never a bare ``struct.error`` or a read of gigabytes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import nn

from models.darknet.build import DarknetNet
from models.darknet.layers import Connected, DarknetConv

__all__ = ["WeightsFileError", "load_weights", "save_weights"]

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


class WeightsFileError(ValueError):
    """A ``.weights`` file does not fit its cfg; the message starts with the file's path."""


def _header(path: Path, handle: BinaryIO, size: int) -> tuple[int, int, int, int, int]:
    """``(major, minor, revision, seen, header bytes)``, checked before the body is read."""
    if size < 12:
        raise WeightsFileError(
            f"{path}: not a Darknet .weights file (a header needs 12 bytes for the version, "
            f"found {size})"
        )
    major, minor, revision = struct.unpack("<3i", handle.read(12))
    if major < 0 or minor < 0 or revision < 0:
        raise WeightsFileError(
            f"{path}: not a Darknet .weights file (version {major}.{minor}.{revision})"
        )
    wide = major * 10 + minor >= 2  # uint64 images-seen counter from version 0.2 on
    length = 20 if wide else 16
    if size < length:
        raise WeightsFileError(
            f"{path}: header of version {major}.{minor}.{revision} needs {length} bytes, "
            f"found {size}"
        )
    (seen,) = struct.unpack("<Q" if wide else "<i", handle.read(length - 12))
    return major, minor, revision, seen, length


@torch.no_grad()
def load_weights(net: DarknetNet, path: str | Path) -> tuple[int, int, int]:
    """Fill ``net`` from a Darknet ``.weights`` file; returns its (major, minor, revision).

    The images-seen counter goes to ``net.seen``. The header and the file's size (from its stat)
    are checked before the body is read: :class:`WeightsFileError` names the file and what was
    expected and found (a different cfg, another number of classes, a cut-off download).
    """
    path = Path(path)
    order = _tensors(net)
    needed = sum(t.numel() for _, t in order)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            major, minor, revision, seen, offset = _header(path, handle, size)
            body = size - offset
            if body != 4 * needed:
                whole = "" if body % 4 == 0 else f" and {body % 4} stray bytes"
                raise WeightsFileError(
                    f"{path}: holds {body // 4:,} floats{whole} after its {offset}-byte header, "
                    f"but {net.cfg_path} needs {needed:,} ({4 * needed + offset:,} bytes in "
                    f"all, found {size:,}; a different cfg, or another number of classes?)"
                )
            floats = np.fromfile(handle, dtype="<f4", count=needed)
    except OSError as err:
        raise WeightsFileError(f"{path}: cannot read the .weights file ({err.strerror})") from None
    if floats.size != needed:  # the file shrank while it was read
        raise WeightsFileError(f"{path}: ended after {floats.size:,} of {needed:,} floats")
    transpose = major > 1000 or minor > 1000
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
