"""One builder per Darknet ``[section]`` kind, registered by kind (``@register_kind``).

A builder reads its section through a :class:`LayerContext` (the cfg, the layer's index, its
input shape and the output shapes of the layers before it), checks every size while it goes and
returns the module, its output shape and its row of the layer table. A cfg that does not fit
fails with the file and line of the layer at fault. The modules themselves are in
``models.darknet.layers``; :class:`~models.darknet.build.DarknetNet` calls :func:`build_layer`
once per section.

Adding a kind: its keys to ``_SCHEMA`` (and its aliases to ``SECTION_ALIASES``) in
``models.darknet.parse``, its module to ``models.darknet.layers``, and one function here
decorated with ``@register_kind("<kind>")``.

BFLOPs per layer follow Darknet's ``l.bflops`` (``convolutional_layer.c``, ``maxpool_layer.c``,
``shortcut_layer.c``): conv ``2 * (c / groups) * n * size^2 * out_h * out_w``, maxpool
``size^2 * c * out_h * out_w``, shortcut ``out_c * out_h * out_w * len(from)``; everything else 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    ScaleChannels,
    Shortcut,
    Softmax,
    Upsample,
)
from models.darknet.parse import DarknetCfg, DarknetCfgError, Section

__all__ = [
    "LAYER_KINDS",
    "MAX_ELEMENTS",
    "LayerContext",
    "LayerInfo",
    "Shape",
    "build_layer",
    "check_size",
    "dropblock_options",
    "register_kind",
]

#: Most weights, or outputs per sample, of one layer (2^40, 4 TB as fp32): beyond any network
#: that can be trained, and far enough from 2^63 that no shape arithmetic overflows.
MAX_ELEMENTS = 2**40


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


@dataclass
class Shape:
    """A layer's output per sample: channels, height, width."""

    c: int
    h: int
    w: int
    #: True from the first layer that pools globally on: such layers belong to no group.
    flat: bool = False

    def like(self) -> Shape:
        """The same shape, for a layer that keeps its input's size."""
        return Shape(self.c, self.h, self.w, flat=self.flat)


def check_size(cfg: DarknetCfg, section: Section, weights: int, out: Shape) -> None:
    """Refuse a layer of more than :data:`MAX_ELEMENTS` weights or outputs per sample."""
    outputs = out.c * out.h * out.w
    for what, count in (("weights", weights), ("outputs per image", outputs)):
        if count > MAX_ELEMENTS:
            raise cfg.error(
                section,
                f"{count:,} {what} ({out.c}x{out.h}x{out.w} out) is more than one layer can "
                f"hold ({MAX_ELEMENTS:,}); check filters, size and [net] width/height",
            )


@dataclass(kw_only=True)
class LayerContext:
    """What the builder of layer ``index`` sees."""

    cfg: DarknetCfg
    index: int
    section: Section
    #: The layer's input: the previous layer's output (or the ``[net]`` input).
    x: Shape
    #: The output shapes of layers ``0 .. index - 1``.
    shapes: list[Shape]
    #: The outputs to build instead of the cfg's, for the classifier layer only; else None.
    classifier_outputs: int | None = None
    #: Keep ``[dropout]`` layers (False builds them as identity).
    keep_dropout: bool = True
    #: ``(kind, path)`` of the regularizers the cfg itself places; builders append to it.
    placements: list[tuple[str, str]]

    def error(self, message: str, key: str | None = None) -> DarknetCfgError:
        return self.cfg.error(self.section, message, key)

    def info(self, out: Shape, **kwargs: Any) -> LayerInfo:
        x = self.x
        return LayerInfo(
            self.index,
            self.section.kind,
            input=(x.c, x.h, x.w),
            output=(out.c, out.h, out.w),
            **kwargs,
        )

    def outputs(self, written: int) -> int:
        """The output count of a conv/connected layer: the cfg's, or the classifier's."""
        return written if self.classifier_outputs is None else self.classifier_outputs

    def activation(self) -> nn.Module:
        name = self.section["activation"]
        if name not in ACTIVATIONS:
            raise self.error(
                f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}",
                "activation",
            )
        return ACTIVATIONS[name]()

    def sources(self, key: str) -> list[int]:
        """The layers ``key`` (``layers``, ``from``) names, as absolute indices before this one."""
        index, resolved = self.index, []
        for value in self.section[key]:
            source = index + value if value < 0 else value
            if not 0 <= source < index:
                raise self.error(
                    f"refers to layer {value} (= {source}), but layer {index} can only read layers 0..{index - 1}",
                    key,
                )
            resolved.append(source)
        if not resolved:
            raise self.error("needs at least one layer", key)
        return resolved


#: Builds one layer: its module, its output shape and its row of the layer table.
LayerBuilder = Callable[[LayerContext], tuple[nn.Module, Shape, LayerInfo]]

#: Section kind (``convolutional``, ``route``, ...) -> its builder.
LAYER_KINDS: dict[str, LayerBuilder] = {}


def register_kind(kind: str) -> Callable[[LayerBuilder], LayerBuilder]:
    """Register the builder of ``[kind]`` sections; a kind registered twice raises."""

    def decorator(builder: LayerBuilder) -> LayerBuilder:
        if kind in LAYER_KINDS:
            raise ValueError(f"Darknet layer kind {kind!r} is registered twice")
        LAYER_KINDS[kind] = builder
        return builder

    return decorator


def build_layer(context: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    """Build the layer of ``context.section`` with the builder registered for its kind."""
    s = context.section
    builder = LAYER_KINDS.get(s.kind)
    if builder is None:  # unreachable: the parser accepts only the kinds registered here
        raise DarknetCfgError(f"{context.cfg.path}:{s.line}: [{s.header}] has no builder")
    return builder(context)


def _strides(s: Section) -> tuple[int, int]:
    """``(stride_y, stride_x)``: each is ``stride`` unless set (>= 1) on its own."""
    stride_y = s["stride_y"] if s["stride_y"] >= 1 else s["stride"]
    stride_x = s["stride_x"] if s["stride_x"] >= 1 else s["stride"]
    return stride_y, stride_x


@dataclass(frozen=True)
class _ConvSettings:
    filters: int
    size: int
    stride: tuple[int, int]
    padding: int
    groups: int
    dilation: int
    batch_normalize: int


def _conv_settings(ctx: LayerContext) -> _ConvSettings:
    """A ``[convolutional]`` section's settings with Darknet's rules, each checked."""
    s, x = ctx.section, ctx.x
    filters = ctx.outputs(s["filters"])
    size, groups, dilation = s["size"], s["groups"], s["dilation"]
    if size == 1:
        dilation = 1  # Darknet's parse_convolutional
    stride_y, stride_x = _strides(s)
    padding = size // 2 if s["pad"] else s["padding"]
    bn = 2 if s["cbn"] else s["batch_normalize"]
    for key in ("xnor", "binary"):
        if s[key]:
            raise ctx.error(
                f"binary convolutions ({key}=1) are not supported: Darknet binarizes the weights "
                "to sign(w) * mean|w| (and with xnor=1 the inputs to +-1, summed by XNOR and "
                "bit count), which needs a straight-through estimator to train and is not "
                "built here; use a float conv (remove the key) or train the cfg in Darknet",
                key,
            )
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
            raise ctx.error(f"must be {rule}, got {value}", key)
    if groups < 1 or x.c % groups or filters % groups:
        raise ctx.error(
            f"groups={groups} must divide the input channels ({x.c}) and filters ({filters})",
            "groups",
        )
    return _ConvSettings(filters, size, (stride_y, stride_x), padding, groups, dilation, bn)


def _dilated_padding(ctx: LayerContext, conv: _ConvSettings, out_h: int, out_w: int) -> int:
    """The padding of the dilated conv Darknet runs: ``pad * dilation``, checked against its size.

    AlexeyAB ``convolutional_layer.c``: the output size is ``(h + 2 * pad - size) / stride + 1``,
    dilation left out, and ``forward_convolutional_layer`` calls ``im2col_cpu_ext`` with padding
    ``l.pad * l.dilation`` and the dilation. With ``pad=1`` (``pad = size / 2``) and an odd size
    both give the same map (a dilated 3x3 keeps the size at stride 1); where they disagree (an
    even size, or an explicit ``padding``) Darknet's im2col fills a buffer of another size than
    the layer's output, which no module here can reproduce: an error.
    """
    x, size, dilation = ctx.x, conv.size, conv.dilation
    padding = conv.padding * dilation
    extent = dilation * (size - 1) + 1
    run_h = (x.h + 2 * padding - extent) // conv.stride[0] + 1
    run_w = (x.w + 2 * padding - extent) // conv.stride[1] + 1
    if (run_h, run_w) != (out_h, out_w):
        raise ctx.error(
            f"dilation={dilation} with size={size} and padding {conv.padding}: Darknet sizes the "
            f"output {out_h}x{out_w} (dilation left out) but its im2col, padding "
            f"{conv.padding}*{dilation}, computes {run_h}x{run_w}; only sizes where both agree "
            "(an odd size with pad=1) are supported",
            "dilation",
        )
    return padding


@register_kind("convolutional")
def _convolutional(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    x, conv = ctx.x, _conv_settings(ctx)
    size, (stride_y, stride_x), padding = conv.size, conv.stride, conv.padding
    out_h = (x.h + 2 * padding - size) // stride_y + 1  # convolutional_out_height
    out_w = (x.w + 2 * padding - size) // stride_x + 1
    if out_h < 1 or out_w < 1:
        raise ctx.error(f"a {size}x{size} window does not fit the {x.h}x{x.w} input")
    padding = _dilated_padding(ctx, conv, out_h, out_w)
    weights = (x.c // conv.groups) * conv.filters * size * size
    out = Shape(conv.filters, out_h, out_w, flat=x.flat)
    check_size(ctx.cfg, ctx.section, weights, out)  # before anything is allocated
    module = DarknetConv(
        x.c, conv.filters, size, conv.stride, padding,
        groups=conv.groups, dilation=conv.dilation, batch_normalize=conv.batch_normalize,
        act=ctx.activation(),
    )  # fmt: skip
    if conv.batch_normalize == 2:
        ctx.placements.append(("cmbn", f"layers.{ctx.index}.bn"))
    stride_text = f"{stride_y}" if stride_x == stride_y else f"{stride_y}x{stride_x}"
    geometry = f"{size} x {size}/{stride_text:>2}" + (f"/{conv.groups}g" if conv.groups > 1 else "")
    detail = f"bn={conv.batch_normalize}" + (f" dil={conv.dilation}" if conv.dilation > 1 else "")
    return module, out, ctx.info(
        out, filters=conv.filters, geometry=geometry,
        bflops=2.0 * weights * out_h * out_w / 1e9, weights=weights, detail=detail,
    )  # fmt: skip


@register_kind("route")
def _route(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s, shapes = ctx.section, ctx.shapes
    sources = ctx.sources("layers")
    groups, group_id = s["groups"], s["group_id"]
    if groups < 1 or not 0 <= group_id < groups:
        raise ctx.error(f"needs 0 <= group_id < groups, got {group_id} of {groups}")
    first = shapes[sources[0]]
    channels = 0
    for source in sources:
        other = shapes[source]
        if (other.h, other.w) != (first.h, first.w):
            raise ctx.error(
                f"layers {sources[0]} and {source} have different sizes "
                f"({first.h}x{first.w} vs {other.h}x{other.w}); a route concatenates channels",
                "layers",
            )
        if other.c % groups:
            raise ctx.error(
                f"layer {source}'s {other.c} channels do not split into {groups} groups",
                "groups",
            )
        channels += other.c // groups
    out = Shape(channels, first.h, first.w, flat=any(shapes[i].flat for i in sources))
    detail = " ".join(map(str, sources)) + (f" /{groups} #{group_id}" if groups > 1 else "")
    return (
        Route(sources, groups, group_id),
        out,
        ctx.info(out, filters=None, geometry="", bflops=0.0, detail=detail),
    )


@register_kind("shortcut")
def _shortcut(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s, x, shapes = ctx.section, ctx.x, ctx.shapes
    sources = ctx.sources("from")
    for key in ("weights_type", "weights_normalization"):
        if s[key] != "none":
            raise ctx.error(
                f"weighted shortcuts are not supported (got {s[key]!r}; only 'none')", key
            )
    for source in sources:
        other = shapes[source]
        big, small = max(other.w, x.w), min(other.w, x.w)
        ratio_ok = small and big % small == 0 and other.h * x.w == other.w * x.h
        if other.flat != x.flat or not ratio_ok:
            raise ctx.error(
                f"adds layer {source} ({other.c}x{other.h}x{other.w}) to the previous output "
                f"({x.c}x{x.h}x{x.w}); sizes must match or differ by an integer factor",
                "from",
            )
    out = x.like()
    detail = " ".join(map(str, sources)) + "".join(
        f" ({shapes[i].c}x{shapes[i].h}x{shapes[i].w} into {x.c}x{x.h}x{x.w})"
        for i in sources
        if (shapes[i].c, shapes[i].h, shapes[i].w) != (x.c, x.h, x.w)
    )
    bflops = x.c * x.h * x.w * len(sources) / 1e9
    return (
        Shortcut(sources, ctx.activation()),
        out,
        ctx.info(out, filters=None, geometry="", bflops=bflops, detail=detail),
    )


@register_kind("maxpool")
def _maxpool(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s, x = ctx.section, ctx.x
    stride_y, stride_x = _strides(s)
    if stride_x != stride_y:
        raise ctx.error("different stride_x and stride_y are not supported", "stride_x")
    stride = stride_x
    size = s["size"] if s["size"] is not None else stride
    padding = s["padding"] if s["padding"] is not None else size - 1
    if stride < 1 or size < 1 or padding < 0:
        raise ctx.error(
            f"needs size >= 1, stride >= 1, padding >= 0; got {size}, {stride}, {padding}"
        )
    out_h = (x.h + padding - size) // stride + 1
    out_w = (x.w + padding - size) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ctx.error(
            f"a {size}x{size} window with padding {padding} does not fit the {x.h}x{x.w} input",
            "size",
        )
    out = Shape(x.c, out_h, out_w, flat=x.flat)
    return MaxPoolDark(size, (stride, stride), padding), out, ctx.info(
        out, filters=None, geometry=f"{size} x {size}/{stride:>2}",
        bflops=size * size * x.c * out_h * out_w / 1e9,
    )  # fmt: skip


@register_kind("avgpool")
def _avgpool(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    out = Shape(ctx.x.c, 1, 1, flat=True)
    return GlobalAvgPool(), out, ctx.info(out, filters=None, geometry="", bflops=0.0)


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


@register_kind("dropout")
def _dropout(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s, x = ctx.section, ctx.x
    p = s["probability"]
    if not 0 <= p < 1:
        raise ctx.error(f"must be in [0, 1), got {p}", "probability")
    for key, high in (
        ("dropblock_size_abs", MAX_ELEMENTS),
        ("dropblock_size_rel", 1),
        ("dropblock_size", 1),
    ):
        if not 0 <= s[key] <= high:  # also NaN
            raise ctx.error(f"must be in [0, {high}], got {s[key]}", key)
    out = x.like()
    if s["dropblock"]:
        options = dropblock_options(s, x.h, x.w)
        module: nn.Module = DropBlock2d(options.pop("p"), options.pop("block_size"), **options)
        placed = "dropblock"
        unit = "" if module.size_mode == "abs" else " rel"
        detail = f"dropblock p={p} size={module.block_size}{unit}"
    else:
        module, placed, detail = nn.Dropout(p), "dropout", f"p={p}"
    if ctx.keep_dropout:
        ctx.placements.append((placed, f"layers.{ctx.index}"))
    else:
        module, detail = nn.Identity(), detail + " (removed)"
    return module, out, ctx.info(out, filters=None, geometry="", bflops=0.0, detail=detail)


@register_kind("connected")
def _connected(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s, x = ctx.section, ctx.x
    outputs = ctx.outputs(s["output"])
    if outputs < 1:
        raise ctx.error(f"must be >= 1, got {outputs}", "output")
    inputs = x.c * x.h * x.w
    bn = s["batch_normalize"]
    if bn not in (0, 1):
        raise ctx.error(f"must be 0 or 1 for [connected], got {bn}", "batch_normalize")
    out = Shape(outputs, 1, 1, flat=True)
    check_size(ctx.cfg, s, inputs * outputs, out)  # before anything is allocated
    return (
        Connected(inputs, outputs, bn, ctx.activation()),
        out,
        ctx.info(out, filters=outputs, geometry="", bflops=0.0, weights=inputs * outputs),
    )


@register_kind("softmax")
def _softmax(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    s = ctx.section
    if s["groups"] != 1:
        raise ctx.error("grouped softmax is not supported (only groups=1)", "groups")
    if not 0 < s["temperature"] < math.inf:
        raise ctx.error(f"must be > 0, got {s['temperature']}", "temperature")
    out = ctx.x.like()
    return Softmax(s["temperature"]), out, ctx.info(out, filters=None, geometry="", bflops=0.0)


@register_kind("cost")
def _cost(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    out = ctx.x.like()
    detail = ctx.section["type"]
    return Cost(), out, ctx.info(out, filters=None, geometry="", bflops=0.0, detail=detail)


@register_kind("scale_channels")
def _scale_channels(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    """``parse_scale_channels`` / ``make_scale_channels_layer``: the checks are Darknet's asserts."""
    s, x = ctx.section, ctx.x
    sources = ctx.sources("from")
    if len(sources) != 1:
        raise ctx.error(f"takes one layer (Darknet reads one), got {len(sources)}", "from")
    source = ctx.shapes[sources[0]]
    scale_wh = bool(s["scale_wh"])
    if scale_wh:
        ok, need = x.c == 1 and (x.h, x.w) == (source.h, source.w), f"1x{source.h}x{source.w}"
    else:
        ok, need = (x.h, x.w) == (1, 1) and x.c == source.c, f"{source.c}x1x1"
    if not ok:
        raise ctx.error(
            f"scales layer {sources[0]} ({source.c}x{source.h}x{source.w}) by the previous "
            f"output, which must be {need}, got {x.c}x{x.h}x{x.w}",
            "from",
        )
    out = source.like()
    detail = f"{sources[0]}" + (" wh" if scale_wh else "")
    return (
        ScaleChannels(sources[0], scale_wh, ctx.activation()),
        out,
        ctx.info(out, filters=None, geometry="", bflops=0.0, detail=detail),
    )


@register_kind("upsample")
def _upsample(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    """``make_upsample_layer``: ``stride < 0`` is reverse (``w / stride``), else ``w * stride``."""
    s, x = ctx.section, ctx.x
    stride, reverse = abs(s["stride"]), s["stride"] < 0
    if stride < 1:
        raise ctx.error("must not be 0", "stride")
    if reverse:
        out = Shape(x.c, x.h // stride, x.w // stride, flat=x.flat)
        if out.h < 1 or out.w < 1:
            raise ctx.error(f"downsampling {x.h}x{x.w} by {stride} leaves nothing", "stride")
    else:
        out = Shape(x.c, x.h * stride, x.w * stride, flat=x.flat)
    check_size(ctx.cfg, s, 0, out)
    detail = f"{'/' if reverse else 'x'}{stride}" + (
        f" scale={s['scale']}" if s["scale"] != 1 else ""
    )
    return (
        Upsample(stride, s["scale"], reverse),
        out,
        ctx.info(out, filters=None, geometry="", bflops=0.0, detail=detail),
    )


@register_kind("crop")
def _crop(ctx: LayerContext) -> tuple[nn.Module, Shape, LayerInfo]:
    """``[crop]`` is refused: it is data augmentation inside the network (``crop_layer.c``)."""
    raise ctx.error(
        "not supported: Darknet's crop layer is training-time augmentation (a random "
        "crop_width x crop_height crop and flip, on the GPU also angle/saturation/exposure "
        "jitter; a centre crop at test time) and rescales the input to [-1, 1] unless noadjust=1; in the harness "
        "augmentation and input scaling belong to the data pipeline. Remove the [crop] section, "
        "set [net] width/height to the crop size and configure the crop/flip in the data config"
    )
