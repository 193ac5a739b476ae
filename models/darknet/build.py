"""A PyTorch network built from a parsed Darknet cfg, layer for layer, with Darknet's table.

Each ``[section]`` after ``[net]`` becomes ``layers[i]`` with Darknet's index ``i``, so a module
path names the cfg layer (``layers.20.conv``) and Darknet's layer tables, log lines and
``.weights`` order line up with the PyTorch model. The layers' semantics are in
``models.darknet.layers``; the builder checks every size while it goes, so a cfg that does not
fit fails with the file and line of the layer at fault.

Sane values: besides Darknet's own rules (filters >= 1, a window that fits, ...) no size may be
negative where Darknet would read memory before the map (``padding=-1``), and no layer may hold
more than :data:`MAX_ELEMENTS` weights or outputs per sample, so an absurd ``filters``/``size``
fails here, naming the line, instead of asking the allocator for petabytes. How much a sane
network needs to train is checked against ``backbone.max_memory_gb`` by the preflight
(``models.memory``).

BFLOPs per layer follow Darknet's ``l.bflops`` (``convolutional_layer.c``, ``maxpool_layer.c``,
``shortcut_layer.c``): conv ``2 * (c / groups) * n * size^2 * out_h * out_w``, maxpool
``size^2 * c * out_h * out_w``, shortcut ``out_c * out_h * out_w * len(from)``; everything else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from layers.drop_block import DropBlock2d
from models.darknet.layers import (
    ACTIVATIONS,
    Connected,
    Cost,
    DarknetConv,
    GlobalAvgPool,
    MaxPoolDark,
    Route,
    Shortcut,
    Softmax,
)
from models.darknet.parse import DarknetCfg, DarknetCfgError, Section

__all__ = ["MAX_ELEMENTS", "DarknetNet", "LayerInfo", "dropblock_options"]

#: Most weights, or outputs per sample, of one layer (2^40, 4 TB as fp32): beyond any network
#: that can be trained, and far enough from 2^63 that no shape arithmetic overflows.
MAX_ELEMENTS = 2**40
#: Largest integer a cfg may give (Darknet reads them into a C ``int``).
MAX_INT = 2**31 - 1


@dataclass
class LayerInfo:
    """One row of the layer table: what Darknet prints when it loads the cfg."""

    index: int
    kind: str
    #: Output channels of conv/connected layers, else None.
    filters: int | None
    #: ``size x size / stride`` text (empty where it does not apply).
    geometry: str
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    bflops: float
    #: Weights of conv/connected layers (Darknet's "#Parameter" counts these).
    weights: int = 0
    #: Layer-specific detail: the route's sources, the shortcut's ``from``, dropout's p, ...
    detail: str = ""
    #: The group 1..4 the layer belongs to (by output stride), or None.
    group: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "type": self.kind,
            "filters": self.filters,
            "size": self.geometry,
            "input": list(self.input),
            "output": list(self.output),
            "bflops": self.bflops,
            "weights": self.weights,
            "detail": self.detail,
            "group": self.group,
        }


def _activation(cfg: DarknetCfg, section: Section) -> nn.Module:
    name = section["activation"]
    if name not in ACTIVATIONS:
        raise cfg.error(
            section,
            f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}",
            "activation",
        )
    return ACTIVATIONS[name]()


def dropblock_options(section: Section, height: int, width: int) -> dict[str, Any]:
    """DropBlock2d arguments for ``[dropout] dropblock=1`` with Darknet's semantics.

    AlexeyAB ``parse_dropout``: an abs size larger than the map is clamped to ``min(w, h)``; with
    neither size set, abs 7; when both are set, abs wins. ``dropblock_size`` (the first DropBlock
    commit's key) reads as ``dropblock_size_rel``. Darknet's kernel (``dropout_layer_kernels.cu``)
    rescales each sample by its own kept fraction and ramps p and the block size to the full
    value at 85% of training: ``rescale="sample"``, ``schedule="darknet"``.
    """
    p = section["probability"]
    absolute = int(section["dropblock_size_abs"])
    relative = section["dropblock_size_rel"] or section["dropblock_size"]
    if absolute > width or absolute > height:
        absolute = min(width, height)
    if not absolute and not relative:
        absolute = 7
    if absolute:
        size, mode = absolute, "abs"
    else:
        size, mode = relative, "rel"
    return {
        "p": p,
        "block_size": size,
        "size_mode": mode,
        "rescale": "sample",
        "schedule": "darknet",
    }


def _check_ints(cfg: DarknetCfg, section: Section) -> None:
    """Every integer of ``section`` fits Darknet's C ``int``."""
    for key in section.lines:
        value = section.values[key]
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, int) and abs(number) > MAX_INT:
                raise cfg.error(section, f"{number} is out of range (|value| <= {MAX_INT})", key)


def _check_size(cfg: DarknetCfg, section: Section, weights: int, out: _Shape) -> None:
    """Refuse a layer of more than :data:`MAX_ELEMENTS` weights or outputs per sample."""
    outputs = out.c * out.h * out.w
    for what, count in (("weights", weights), ("outputs per image", outputs)):
        if count > MAX_ELEMENTS:
            raise cfg.error(
                section,
                f"{count:,} {what} ({out.c}x{out.h}x{out.w} out) is more than one layer can "
                f"hold ({MAX_ELEMENTS:,}); check filters, size and [net] width/height",
            )


@dataclass
class _Shape:
    c: int
    h: int
    w: int
    #: True from the first layer that pools globally on: such layers belong to no group.
    flat: bool = False


class DarknetNet(nn.Module):
    """The network a Darknet cfg describes.

    Args:
        cfg: the parsed cfg (:func:`models.darknet.parse.parse_cfg`).
        num_classes: outputs of the classifier, the last ``[convolutional]``/``[connected]``
            layer; ``None`` keeps the cfg's own count. Everything else is built as written.
        input_size: the square input side used for the layer table and the group map; ``None``
            takes ``[net] width/height``.
        keep_dropout: keep the cfg's ``[dropout]`` layers (``False`` builds them as identity).

    The forward pass returns ``(N, classes)`` (the last layer's output, flattened).
    """

    def __init__(
        self,
        cfg: DarknetCfg,
        num_classes: int | None = None,
        input_size: int | None = None,
        keep_dropout: bool = True,
    ) -> None:
        super().__init__()
        net = cfg.net
        for section in (net, *cfg.layers):
            _check_ints(cfg, section)
        height = input_size or net["height"]
        width = input_size or net["width"]
        channels = net["channels"] or 3
        if height < 1 or width < 1:
            raise cfg.error(net, "width and height must be set (> 0) to build the network")
        if channels < 1:
            raise cfg.error(net, f"must be >= 1, got {channels}", "channels")
        if channels * height * width > MAX_ELEMENTS:
            raise cfg.error(
                net, f"a {channels}x{height}x{width} input is larger than {MAX_ELEMENTS:,} values"
            )
        self.cfg_path = cfg.path
        self.input_shape = (channels, height, width)
        self.layers = nn.ModuleList()
        self.info: list[LayerInfo] = []
        self.classifier_index = max(
            (i for i, s in enumerate(cfg.layers) if s.kind in ("convolutional", "connected")),
            default=None,
        )
        #: (kind, path) of the regularizers the cfg itself places: [dropout] and CmBN.
        self._cfg_placements: list[tuple[str, str]] = []
        shapes: list[_Shape] = []
        current = _Shape(channels, height, width)
        for index, section in enumerate(cfg.layers):
            module, out, info = self._build_layer(
                cfg, index, section, current, shapes, num_classes, keep_dropout
            )
            _check_size(cfg, section, info.weights, out)  # a route's or shortcut's output
            if not out.flat:
                stride = height // out.h if out.h else 0
                if stride >= 4:
                    info.group = min(4, int(math.log2(stride)) - 1)
            self.layers.append(module)
            self.info.append(info)
            shapes.append(out)
            current = out
        self.referenced = sorted(
            {i for m in self.layers if isinstance(m, (Route, Shortcut)) for i in m.sources}
        )
        #: Darknet's images-seen counter of a loaded ``.weights`` file (written back on save).
        self.seen = 0

    # --- building ------------------------------------------------------------------------------
    def _resolve(self, cfg: DarknetCfg, section: Section, key: str, index: int) -> list[int]:
        resolved = []
        for value in section[key]:
            source = index + value if value < 0 else value
            if not 0 <= source < index:
                raise cfg.error(
                    section,
                    f"refers to layer {value} (= {source}), but layer {index} can only read layers 0..{index - 1}",
                    key,
                )
            resolved.append(source)
        if not resolved:
            raise cfg.error(section, "needs at least one layer", key)
        return resolved

    def _build_layer(
        self,
        cfg: DarknetCfg,
        index: int,
        s: Section,
        x: _Shape,
        shapes: list[_Shape],
        num_classes: int | None,
        keep_dropout: bool,
    ) -> tuple[nn.Module, _Shape, LayerInfo]:
        kind = s.kind
        shape_in = (x.c, x.h, x.w)

        def info(out: _Shape, **kwargs: Any) -> LayerInfo:
            return LayerInfo(index, kind, input=shape_in, output=(out.c, out.h, out.w), **kwargs)

        if kind == "convolutional":
            filters = s["filters"]
            if index == self.classifier_index and num_classes is not None:
                filters = num_classes
            size, groups, dilation = s["size"], s["groups"], s["dilation"]
            if size == 1:
                dilation = 1  # Darknet's parse_convolutional
            stride_y = s["stride_y"] if s["stride_y"] >= 1 else s["stride"]
            stride_x = s["stride_x"] if s["stride_x"] >= 1 else s["stride"]
            padding = size // 2 if s["pad"] else s["padding"]
            bn = 2 if s["cbn"] else s["batch_normalize"]
            for key, value, ok in (
                ("filters", filters, filters >= 1),
                ("size", size, size >= 1),
                ("padding", padding, padding >= 0),
                ("stride", min(stride_x, stride_y), min(stride_x, stride_y) >= 1),
                ("dilation", dilation, dilation >= 1),
                ("batch_normalize", bn, bn in (0, 1, 2)),
            ):
                if not ok:
                    rule = {"batch_normalize": "0, 1 or 2", "padding": ">= 0"}.get(key, ">= 1")
                    raise cfg.error(s, f"must be {rule}, got {value}", key)
            if groups < 1 or x.c % groups or filters % groups:
                raise cfg.error(
                    s,
                    f"groups={groups} must divide the input channels ({x.c}) and filters ({filters})",
                    "groups",
                )
            extent = dilation * (size - 1) + 1
            out_h = (x.h + 2 * padding - extent) // stride_y + 1
            out_w = (x.w + 2 * padding - extent) // stride_x + 1
            if out_h < 1 or out_w < 1:
                raise cfg.error(s, f"a {size}x{size} window does not fit the {x.h}x{x.w} input")
            weights = (x.c // groups) * filters * size * size
            out = _Shape(filters, out_h, out_w, flat=x.flat)
            _check_size(cfg, s, weights, out)  # before anything is allocated
            module = DarknetConv(
                x.c, filters, size, (stride_y, stride_x), padding, groups, dilation, bn,
                _activation(cfg, s),
            )  # fmt: skip
            if bn == 2:
                self._cfg_placements.append(("cmbn", f"layers.{index}.bn"))
            stride_text = f"{stride_y}" if stride_x == stride_y else f"{stride_y}x{stride_x}"
            geometry = f"{size} x {size}/{stride_text:>2}" + (f"/{groups}g" if groups > 1 else "")
            return (
                module,
                out,
                info(
                    out,
                    filters=filters,
                    geometry=geometry,
                    bflops=2.0 * weights * out_h * out_w / 1e9,
                    weights=weights,
                    detail=f"bn={bn}" + (f" dil={dilation}" if dilation > 1 else ""),
                ),
            )

        if kind == "route":
            sources = self._resolve(cfg, s, "layers", index)
            groups, group_id = s["groups"], s["group_id"]
            if groups < 1 or not 0 <= group_id < groups:
                raise cfg.error(s, f"needs 0 <= group_id < groups, got {group_id} of {groups}")
            first = shapes[sources[0]]
            channels = 0
            for source in sources:
                other = shapes[source]
                if (other.h, other.w) != (first.h, first.w):
                    raise cfg.error(
                        s,
                        f"layers {sources[0]} and {source} have different sizes "
                        f"({first.h}x{first.w} vs {other.h}x{other.w}); a route concatenates channels",
                        "layers",
                    )
                if other.c % groups:
                    raise cfg.error(
                        s,
                        f"layer {source}'s {other.c} channels do not split into {groups} groups",
                        "groups",
                    )
                channels += other.c // groups
            out = _Shape(channels, first.h, first.w, flat=any(shapes[i].flat for i in sources))
            detail = " ".join(map(str, sources)) + (f" /{groups} #{group_id}" if groups > 1 else "")
            return (
                Route(sources, groups, group_id),
                out,
                info(out, filters=None, geometry="", bflops=0.0, detail=detail),
            )

        if kind == "shortcut":
            sources = self._resolve(cfg, s, "from", index)
            for key in ("weights_type", "weights_normalization"):
                if s[key] != "none":
                    raise cfg.error(
                        s,
                        f"weighted shortcuts are not supported (got {s[key]!r}; only 'none')",
                        key,
                    )
            for source in sources:
                other = shapes[source]
                big, small = max(other.w, x.w), min(other.w, x.w)
                ratio_ok = small and big % small == 0 and other.h * x.w == other.w * x.h
                if other.flat != x.flat or not ratio_ok:
                    raise cfg.error(
                        s,
                        f"adds layer {source} ({other.c}x{other.h}x{other.w}) to the previous output "
                        f"({x.c}x{x.h}x{x.w}); sizes must match or differ by an integer factor",
                        "from",
                    )
            out = _Shape(x.c, x.h, x.w, flat=x.flat)
            detail = " ".join(map(str, sources)) + "".join(
                f" ({shapes[i].c}x{shapes[i].h}x{shapes[i].w} into {x.c}x{x.h}x{x.w})"
                for i in sources
                if (shapes[i].c, shapes[i].h, shapes[i].w) != (x.c, x.h, x.w)
            )
            return (
                Shortcut(sources, _activation(cfg, s)),
                out,
                info(
                    out,
                    filters=None,
                    geometry="",
                    bflops=x.c * x.h * x.w * len(sources) / 1e9,
                    detail=detail,
                ),
            )

        if kind == "maxpool":
            stride_y = s["stride_y"] if s["stride_y"] >= 1 else s["stride"]
            stride_x = s["stride_x"] if s["stride_x"] >= 1 else s["stride"]
            if stride_x != stride_y:
                raise cfg.error(s, "different stride_x and stride_y are not supported", "stride_x")
            stride = stride_x
            size = s["size"] if s["size"] is not None else stride
            padding = s["padding"] if s["padding"] is not None else size - 1
            if stride < 1 or size < 1 or padding < 0:
                raise cfg.error(
                    s,
                    f"needs size >= 1, stride >= 1, padding >= 0; got {size}, {stride}, {padding}",
                )
            out_h = (x.h + padding - size) // stride + 1
            out_w = (x.w + padding - size) // stride + 1
            if out_h < 1 or out_w < 1:
                raise cfg.error(
                    s,
                    f"a {size}x{size} window with padding {padding} does not fit the "
                    f"{x.h}x{x.w} input",
                    "size",
                )
            out = _Shape(x.c, out_h, out_w, flat=x.flat)
            return MaxPoolDark(size, (stride, stride), padding), out, info(
                out, filters=None, geometry=f"{size} x {size}/{stride:>2}",
                bflops=size * size * x.c * out_h * out_w / 1e9,
            )  # fmt: skip

        if kind == "avgpool":
            out = _Shape(x.c, 1, 1, flat=True)
            return GlobalAvgPool(), out, info(out, filters=None, geometry="", bflops=0.0)

        if kind == "dropout":
            p = s["probability"]
            if not 0 <= p < 1:
                raise cfg.error(s, f"must be in [0, 1), got {p}", "probability")
            for key, high in (
                ("dropblock_size_abs", MAX_ELEMENTS),
                ("dropblock_size_rel", 1),
                ("dropblock_size", 1),
            ):
                if not 0 <= s[key] <= high:  # also NaN
                    raise cfg.error(s, f"must be in [0, {high}], got {s[key]}", key)
            out = _Shape(x.c, x.h, x.w, flat=x.flat)
            if s["dropblock"]:
                options = dropblock_options(s, x.h, x.w)
                module: nn.Module = DropBlock2d(
                    options.pop("p"), options.pop("block_size"), **options
                )
                placed = "dropblock"
                unit = "" if module.size_mode == "abs" else " rel"
                detail = f"dropblock p={p} size={module.block_size}{unit}"
            else:
                module, placed, detail = nn.Dropout(p), "dropout", f"p={p}"
            if keep_dropout:
                self._cfg_placements.append((placed, f"layers.{index}"))
            else:
                module, detail = nn.Identity(), detail + " (removed)"
            return module, out, info(out, filters=None, geometry="", bflops=0.0, detail=detail)

        if kind == "connected":
            outputs = s["output"]
            if index == self.classifier_index and num_classes is not None:
                outputs = num_classes
            if outputs < 1:
                raise cfg.error(s, f"must be >= 1, got {outputs}", "output")
            inputs = x.c * x.h * x.w
            bn = s["batch_normalize"]
            if bn not in (0, 1):
                raise cfg.error(s, f"must be 0 or 1 for [connected], got {bn}", "batch_normalize")
            out = _Shape(outputs, 1, 1, flat=True)
            _check_size(cfg, s, inputs * outputs, out)  # before anything is allocated
            return (
                Connected(inputs, outputs, bn, _activation(cfg, s)),
                out,
                info(out, filters=outputs, geometry="", bflops=0.0, weights=inputs * outputs),
            )

        if kind == "softmax":
            if s["groups"] != 1:
                raise cfg.error(s, "grouped softmax is not supported (only groups=1)", "groups")
            if not 0 < s["temperature"] < math.inf:
                raise cfg.error(s, f"must be > 0, got {s['temperature']}", "temperature")
            out = _Shape(x.c, x.h, x.w, flat=x.flat)
            return Softmax(s["temperature"]), out, info(out, filters=None, geometry="", bflops=0.0)

        if kind == "cost":
            out = _Shape(x.c, x.h, x.w, flat=x.flat)
            return Cost(), out, info(out, filters=None, geometry="", bflops=0.0, detail=s["type"])

        raise DarknetCfgError(f"{cfg.path}:{s.line}: [{s.header}] has no builder")  # unreachable

    # --- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.referenced
        outputs: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Route):
                x = layer(outputs)
            elif isinstance(layer, Shortcut):
                x = layer(x, outputs)
            else:
                x = layer(x)
                if self.info[index].kind == "dropout" and index - 1 in outputs:
                    outputs[index - 1] = x  # Darknet's dropout works in place on its input
            if index in keep:
                outputs[index] = x
        return x.flatten(1)

    # --- group map and placements --------------------------------------------------------------
    def group_layers(self) -> dict[int, list[int]]:
        """Group 1..4 -> the indices of the layers in it (output stride 4, 8, 16, >= 32)."""
        groups: dict[int, list[int]] = {g: [] for g in (1, 2, 3, 4)}
        for row in self.info:
            if row.group is not None:
                groups[row.group].append(row.index)
        return groups

    def group_paths(self) -> dict[int, str]:
        """Every group's layers are children of ``layers``, named by their Darknet index."""
        return {g: "layers" for g in (1, 2, 3, 4)}

    def group_modules(self) -> dict[int, nn.Module]:
        """A container per group whose children are that group's layers, named by index.

        The containers are views (not registered in the model): placing a regularizer into a
        child changes the model's own layer, and the path ``layers.<index>...`` is its real path.
        """
        views: dict[int, nn.Module] = {}
        for group, indices in self.group_layers().items():
            view = nn.Module()
            for index in indices:
                view.add_module(str(index), self.layers[index])
            views[group] = view
        return views

    def placements(self) -> list[str]:
        """``kind:path`` of what the cfg itself places: ``dropblock:layers.12``, ``cmbn:layers.3.bn``."""
        return [f"{kind}:{path}" for kind, path in self._cfg_placements]

    @property
    def total_bflops(self) -> float:
        return sum(row.bflops for row in self.info)

    @property
    def conv_weights(self) -> int:
        return sum(row.weights for row in self.info)
