"""A PyTorch network built from a parsed Darknet cfg, layer for layer.

Each ``[section]`` after ``[net]`` becomes ``layers[i]`` with Darknet's index ``i``, so a module
path names the cfg layer (``layers.20.conv``) and Darknet's layer tables, log lines and
``.weights`` order line up with the PyTorch model. Semantics follow AlexeyAB/darknet:

- ``[convolutional]``: ``pad=1`` means ``padding = size // 2``; no bias when batch-normalised;
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
- ``[softmax]`` and ``[cost]``: the harness's loss is cross-entropy on logits, which is
  Darknet's softmax layer's own loss, so the network returns logits (divided by the softmax
  ``temperature``) and ``[cost]`` passes them through.

BFLOPs per layer follow Darknet's ``l.bflops`` (``convolutional_layer.c``, ``maxpool_layer.c``,
``shortcut_layer.c``): conv ``2 * (c / groups) * n * size^2 * out_h * out_w``, maxpool
``size^2 * c * out_h * out_w``, shortcut ``out_c * out_h * out_w * len(from)``; everything else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from layers.cross_iteration_bn import CrossIterationBatchNorm2d
from layers.drop_block import DropBlock2d
from models.darknet.parse import DarknetCfg, DarknetCfgError, Section

__all__ = ["ACTIVATIONS", "DarknetNet", "LayerInfo", "dropblock_options"]

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
    "gelu": nn.GELU,
}

#: Darknet's batch-norm numerics: eps 1e-5, rolling update 0.9 * old + 0.1 * new.
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


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


class DarknetConv(nn.Module):
    """``[convolutional]``: conv, optional BN (``bn``), activation (``act``)."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int],
        padding: int,
        groups: int,
        dilation: int,
        batch_normalize: int,
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


@dataclass
class _Shape:
    c: int
    h: int
    w: int
    #: True from the first layer that pools globally on: no group, no DropBlock.
    flat: bool = False
    #: Layers whose output this one is (a dropout aliases its input).
    sources: list[int] = field(default_factory=list)


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
        height = input_size or net["height"]
        width = input_size or net["width"]
        channels = net["channels"] or 3
        if not height or not width:
            raise cfg.error(net, "width and height must be set (> 0) to build the network")
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

        if kind in ("convolutional", "maxpool", "avgpool") and x.flat and kind != "convolutional":
            raise cfg.error(s, f"needs an image input, but layer {index - 1} outputs a vector")
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
                ("stride", min(stride_x, stride_y), min(stride_x, stride_y) >= 1),
                ("dilation", dilation, dilation >= 1),
                ("batch_normalize", bn, bn in (0, 1, 2)),
            ):
                if not ok:
                    rule = "0, 1 or 2" if key == "batch_normalize" else ">= 1"
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
            module = DarknetConv(
                x.c, filters, size, (stride_y, stride_x), padding, groups, dilation, bn,
                _activation(cfg, s),
            )  # fmt: skip
            if bn == 2:
                self._cfg_placements.append(("cmbn", f"layers.{index}.bn"))
            weights = (x.c // groups) * filters * size * size
            out = _Shape(filters, out_h, out_w, flat=x.flat)
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
            out = _Shape(x.c, out_h, out_w)
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
            out = _Shape(x.c, x.h, x.w, flat=x.flat)
            if s["dropblock"]:
                if x.flat:
                    raise cfg.error(
                        s, "DropBlock needs a feature map, but the input is a vector", "dropblock"
                    )
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
            return (
                Connected(inputs, outputs, bn, _activation(cfg, s)),
                out,
                info(out, filters=outputs, geometry="", bflops=0.0, weights=inputs * outputs),
            )

        if kind == "softmax":
            if s["groups"] != 1:
                raise cfg.error(s, "grouped softmax is not supported (only groups=1)", "groups")
            if s["temperature"] <= 0:
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
