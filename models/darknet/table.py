"""Darknet's layer table for a cfg network: text in Darknet's style, or a JSON-able dict.

The columns are those Darknet prints while it loads a cfg (``parser.c parse_network_cfg`` and
each layer's ``make_*_layer``): index, type, filters, size/stride, input -> output as
``w x h x c``, and ``l.bflops``, then ``Total BFLOPS``. The conv-weight total is the CSPNet
README's "#Parameter" (Darknet itself prints no parameter count).
"""

from __future__ import annotations

from typing import Any

from models.darknet.build import DarknetNet

__all__ = ["format_table", "table_dict"]

#: Darknet's short names in its load log.
_SHORT = {
    "convolutional": "conv",
    "maxpool": "max",
    "avgpool": "avg",
    "route": "route",
    "shortcut": "shortcut",
    "dropout": "dropout",
    "connected": "connected",
    "softmax": "softmax",
    "cost": "cost",
    "scale_channels": "scale_ch",
    "upsample": "upsample",
    "crop": "crop",
}


def _whc(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{w:4d} x{h:4d} x{c:5d}"


def _group_ranges(indices: list[int]) -> str:
    if not indices:
        return "-"
    ranges, start, prev = [], indices[0], indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == prev + 1:
            prev = index
            continue
        ranges.append(f"{start}" if start == prev else f"{start}-{prev}")
        if index is not None:
            start = prev = index
    return ",".join(ranges)


def format_table(net: DarknetNet) -> str:
    """The layer table as Darknet prints it, with totals and the group map."""
    lines = [
        f"{net.cfg_path} @ {net.input_shape[2]}x{net.input_shape[1]}x{net.input_shape[0]}",
        "   layer     filters  size/strd        input                   output",
    ]
    for row in net.info:
        filters = f"{row.filters:6d}" if row.filters is not None else " " * 6
        lines.append(
            f"{row.index:4d} {_SHORT[row.kind]:<9s} {filters} {row.geometry:<14s} "
            f"{_whc(row.input)} -> {_whc(row.output)} {row.bflops:7.3f} BF"
            + (f"  {row.detail}" if row.detail else "")
        )
    params = sum(p.numel() for p in net.parameters())
    lines += [
        f"Total BFLOPS {net.total_bflops:.3f}",
        f"conv weights {net.conv_weights:,} ({net.conv_weights / 1e6:.3f} M, the CSP README's #Parameter)",
        f"parameters   {params:,} (weights, biases and BN affine)",
        "groups       "
        + ", ".join(f"{g}=layers {_group_ranges(ix)}" for g, ix in net.group_layers().items()),
    ]
    return "\n".join(lines)


def table_dict(net: DarknetNet) -> dict[str, Any]:
    """The same table as plain data: ``layers`` (one dict per row) and the totals."""
    return {
        "cfg": net.cfg_path,
        "input": list(net.input_shape),
        "layers": [row.as_dict() for row in net.info],
        "total_bflops": net.total_bflops,
        "conv_weights": net.conv_weights,
        "params": sum(p.numel() for p in net.parameters()),
        "groups": {str(g): ix for g, ix in net.group_layers().items()},
    }
