"""A PyTorch network built from a parsed Darknet cfg, layer for layer, with Darknet's table.

Each ``[section]`` after ``[net]`` becomes ``layers[i]`` with Darknet's index ``i``, so a module
path names the cfg layer (``layers.20.conv``) and Darknet's layer tables, log lines and
``.weights`` order line up with the PyTorch model. The layers' semantics are in
``models.darknet.layers``; each section kind has its builder in ``models.darknet.kinds``, which
checks every size while it goes, so a cfg that does not fit fails with the file and line of the
layer at fault.

Sane values: besides Darknet's own rules (filters >= 1, a window that fits, ...) no size may be
negative where Darknet would read memory before the map (``padding=-1``), and no layer may hold
more than :data:`MAX_ELEMENTS` weights or outputs per sample, so an absurd ``filters``/``size``
fails here, naming the line, instead of asking the allocator for petabytes. How much a sane
network needs to train is checked against ``backbone.max_memory_gb`` by the preflight
(``models.memory``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.darknet.kinds import (
    MAX_ELEMENTS,
    LayerContext,
    LayerInfo,
    Shape,
    build_layer,
    check_size,
    dropblock_options,
)
from models.darknet.layers import Route, ScaleChannels, Shortcut
from models.darknet.parse import DarknetCfg, Section

__all__ = ["MAX_ELEMENTS", "DarknetNet", "LayerInfo", "dropblock_options"]

#: Largest integer a cfg may give (Darknet reads them into a C ``int``).
MAX_INT = 2**31 - 1


def _check_ints(cfg: DarknetCfg, section: Section) -> None:
    """Every integer of ``section`` fits Darknet's C ``int``."""
    for key in section.lines:
        value = section.values[key]
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, int) and abs(number) > MAX_INT:
                raise cfg.error(section, f"{number} is out of range (|value| <= {MAX_INT})", key)


def _input_shape(cfg: DarknetCfg, input_size: int | None) -> Shape:
    """The network's input after every integer of the cfg is checked: ``[net]`` channels and
    size (``input_size`` square when given), within :data:`MAX_ELEMENTS`."""
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
    return Shape(channels, height, width)


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
        current = _input_shape(cfg, input_size)
        height = current.h
        self.cfg_path = cfg.path
        self.input_shape = (current.c, current.h, current.w)
        self.layers = nn.ModuleList()
        self.info: list[LayerInfo] = []
        self.classifier_index = max(
            (i for i, s in enumerate(cfg.layers) if s.kind in ("convolutional", "connected")),
            default=None,
        )
        #: (kind, path) of the regularizers the cfg itself places: [dropout] and CmBN.
        self._cfg_placements: list[tuple[str, str]] = []
        shapes: list[Shape] = []
        for index, section in enumerate(cfg.layers):
            module, out, info = build_layer(
                LayerContext(
                    cfg=cfg,
                    index=index,
                    section=section,
                    x=current,
                    shapes=shapes,
                    classifier_outputs=num_classes if index == self.classifier_index else None,
                    keep_dropout=keep_dropout,
                    placements=self._cfg_placements,
                )
            )
            check_size(cfg, section, info.weights, out)  # a route's or shortcut's output
            if not out.flat:
                stride = height // out.h if out.h else 0
                if stride >= 4:
                    info.group = min(4, int(math.log2(stride)) - 1)
            self.layers.append(module)
            self.info.append(info)
            shapes.append(out)
            current = out
        self.referenced = sorted(
            {
                i
                for m in self.layers
                if isinstance(m, (Route, Shortcut, ScaleChannels))
                for i in m.sources
            }
        )
        #: Darknet's images-seen counter of a loaded ``.weights`` file (written back on save).
        self.seen = 0

    # --- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.referenced
        outputs: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Route):
                x = layer(outputs)
            elif isinstance(layer, (Shortcut, ScaleChannels)):
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
