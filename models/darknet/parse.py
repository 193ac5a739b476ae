"""Reading a Darknet ``.cfg`` file into checked sections, with Darknet's defaults.

The grammar and defaults are those of AlexeyAB/darknet ``src/parser.c`` (``read_cfg``,
``parse_net_options``, ``parse_convolutional``, ``parse_route``, ``parse_shortcut``,
``parse_maxpool``, ``parse_dropout``, ...): ``[section]`` headers, one ``key=value`` per line,
whitespace removed anywhere in the line (``layers = -2`` is ``layers=-2``), ``#`` and ``;``
start a comment line. Section aliases are Darknet's (``[conv]``, ``[max]``, ``[avg]``,
``[soft]``, ``[conn]``, ``[network]``).

Two rules of Darknet's own cfgs that a stricter reader would refuse, read as Darknet reads them:

- A comment after a value (``filters=40 #32``): Darknet has no inline comments, but its
  ``strip()`` (``utils.c``) drops the spaces and ``atoi``/``atof`` stop at the ``#``, so a
  number followed by ``#...`` or ``;...`` is that number (``40``); in a comma list
  (``parse_route``) each comma-separated part is read so. A *name* (``activation=leaky #mish``)
  is read whole by Darknet (``get_activation`` then falls back to relu), so a name with ``#`` or
  ``;`` in it is an error here rather than a silently different network.
- A key given twice in a section: ``option_insert`` (``option_list.c``) appends each pair to the
  section's list and ``option_find`` returns the first match, so the first value wins; Darknet
  reports the later ones as "Unused field". Here each repeated key is logged once (one warning
  naming every line, the first as the one used); the later values are not read at all.

Where Darknet prints "Unused field" for an unknown key and carries on, this parser stops: an
unknown section, an unknown key or a value of the wrong type raises one :class:`DarknetCfgError`
naming the file and the line. Keys that Darknet knows but that do not change the network the harness builds (the
training settings of ``[net]``, a conv layer's ``learning_rate`` multiplier, ...) are kept in
:attr:`Section.unused`, so the caller can report them once.

This module imports no torch.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_CFG_BYTES",
    "DarknetCfg",
    "DarknetCfgError",
    "Section",
    "parse_cfg",
    "parse_cfg_text",
]


log = logging.getLogger(__name__)

#: Largest cfg file read (csresnext50.cfg is 19 KB, yolov4.cfg 12 KB).
MAX_CFG_BYTES = 1 << 20


class DarknetCfgError(ValueError):
    """A cfg file breaks the grammar; the message starts with ``<file>:<line>:``."""


#: ``[alias]`` -> canonical section name (Darknet's ``string_to_layer_type``).
SECTION_ALIASES = {
    "net": "net",
    "network": "net",
    "convolutional": "convolutional",
    "conv": "convolutional",
    "route": "route",
    "shortcut": "shortcut",
    "maxpool": "maxpool",
    "max": "maxpool",
    "avgpool": "avgpool",
    "avg": "avgpool",
    "dropout": "dropout",
    "connected": "connected",
    "conn": "connected",
    "softmax": "softmax",
    "soft": "softmax",
    "cost": "cost",
    "scale_channels": "scale_channels",
    "upsample": "upsample",
    "crop": "crop",
}

#: The stride keys ``[convolutional]`` and ``[maxpool]`` share (-1: take ``stride``).
_STRIDE_KEYS: dict[str, tuple[Any, Any]] = {
    "stride": (int, 1),
    "stride_x": (int, -1),
    "stride_y": (int, -1),
}

# Per section: key -> (type, default). ``None`` as default means "required" (Darknet's
# ``option_find`` without a default exits). Types: int, float, str, "ints" (comma list).
_SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "net": {
        "batch": (int, 1),
        "subdivisions": (int, 1),
        "width": (int, 0),
        "height": (int, 0),
        "channels": (int, 0),
    },
    "convolutional": {
        "filters": (int, 1),
        "size": (int, 1),
        **_STRIDE_KEYS,
        "pad": (int, 0),
        "padding": (int, 0),
        "groups": (int, 1),
        "dilation": (int, 1),
        "activation": (str, "logistic"),
        "batch_normalize": (int, 0),
        "cbn": (int, 0),
        # binary convs (refused by the builder, saying why)
        "xnor": (int, 0),
        "binary": (int, 0),
    },
    "route": {"layers": ("ints", None), "groups": (int, 1), "group_id": (int, 0)},
    "shortcut": {
        "from": ("ints", None),
        "activation": (str, "linear"),
        "weights_type": (str, "none"),
        "weights_normalization": (str, "none"),
    },
    "maxpool": {
        "size": (int, None),  # default: stride (resolved in the builder)
        **_STRIDE_KEYS,
        "padding": (int, None),  # default: size - 1
    },
    "avgpool": {},
    "dropout": {
        "probability": (float, 0.2),
        "dropblock": (int, 0),
        "dropblock_size_abs": (float, 0.0),
        "dropblock_size_rel": (float, 0.0),
        # The key of AlexeyAB's first DropBlock commit (1df3ddc), read as dropblock_size_rel.
        "dropblock_size": (float, 0.0),
    },
    "connected": {
        "output": (int, 1),
        "activation": (str, "logistic"),
        "batch_normalize": (int, 0),
    },
    "softmax": {
        "groups": (int, 1),
        "temperature": (float, 1.0),
        "noloss": (int, 0),
    },
    "cost": {"type": (str, "sse"), "scale": (float, 1.0), "ratio": (float, 0.0)},
    # parse_scale_channels: ``from`` is one layer (atoi)
    "scale_channels": {
        "from": ("ints", None),
        "scale_wh": (int, 0),
        "activation": (str, "linear"),
    },
    "upsample": {"stride": (int, 2), "scale": (float, 1.0)},
    # parse_crop (refused by the builder, saying why)
    "crop": {
        "crop_height": (int, 1),
        "crop_width": (int, 1),
        "flip": (int, 0),
        "angle": (float, 0.0),
        "saturation": (float, 1.0),
        "exposure": (float, 1.0),
        "shift": (float, 0.0),
        "noadjust": (int, 0),
    },
}

#: Keys Darknet reads that do not change the network built here: reported once, not an error.
_KNOWN_UNUSED: dict[str, set[str]] = {
    "net": {
        # optimiser and schedule (the harness's optim config applies)
        "max_batches", "learning_rate", "learning_rate_min", "momentum", "decay", "policy",
        "burn_in", "power", "step", "steps", "scale", "scales", "gamma", "sgdr_cycle",
        "sgdr_mult", "batches_per_cycle", "batches_cycle_mult", "adam", "B1", "B2", "eps",
        "loss_scale", "dynamic_minibatch", "optimized_memory", "workspace_size_limit_MB",
        "try_fix_nan", "seq_scales", "num_steps",
        # data augmentation (the harness's data config applies)
        "min_crop", "max_crop", "center", "flip", "angle", "aspect", "saturation", "exposure",
        "hue", "mixup", "cutmix", "mosaic", "blur", "gaussian_noise", "letter_box",
        "mosaic_bound", "label_smooth_eps", "contrastive", "unsupervised", "adversarial_lr",
        "attention", "track", "augment_speed", "sequential_subdivisions", "time_steps",
        "inputs", "max_chart_loss", "show_receptive_field", "random", "resize", "jitter",
    },
    "convolutional": {"learning_rate", "stopbackward", "dontload", "dontloadscales", "stream",
                      "wait_stream", "train_only_bn"},
    "connected": {"learning_rate", "stopbackward", "dontload", "dontloadscales"},
    "shortcut": {"stopbackward"},
    "route": {"stopbackward", "stream", "wait_stream"},
    "maxpool": {"stopbackward"},
    "dropout": {"stopbackward"},
    "avgpool": set(),
    "softmax": set(),
    "cost": set(),
    "scale_channels": set(),
    "upsample": set(),
    "crop": set(),
}  # fmt: skip


@dataclass
class Section:
    """One ``[section]`` of a cfg file, its values with Darknet's defaults filled in."""

    kind: str
    #: The header as written (``conv`` for ``[conv]``).
    header: str
    line: int
    #: Every key of the section's schema: the value written, or Darknet's default.
    values: dict[str, Any] = field(default_factory=dict)
    #: The keys that were written, with the line of each.
    lines: dict[str, int] = field(default_factory=dict)
    #: Known Darknet keys that the harness does not use, as written: ``{key: text}``.
    unused: dict[str, str] = field(default_factory=dict)
    #: Every line each key was written on, in order (the first is the one Darknet uses).
    written: dict[str, list[int]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def where(self, key: str | None = None) -> int:
        """The line of ``key`` (or of the header when the key was not written)."""
        return self.lines.get(key, self.line) if key else self.line


@dataclass
class DarknetCfg:
    """A parsed cfg: its ``[net]`` section and its layers, in file order (index = Darknet's)."""

    path: str
    net: Section
    layers: list[Section]

    def error(self, section: Section, message: str, key: str | None = None) -> DarknetCfgError:
        """An error for ``section`` (or its ``key``) that names this file and the line."""
        what = f"[{section.header}]" + (f" {key}" if key else "")
        return DarknetCfgError(f"{self.path}:{section.where(key)}: {what}: {message}")


#: A number followed by a comment: what C's ``atoi``/``atof`` read of ``40#32`` is ``40``.
_TRAILING_COMMENT = re.compile(r"([^#;]*)[#;].*")


def _number_text(text: str) -> str:
    """``text`` without a ``#``/``;`` comment after the number (Darknet's atoi/atof stop there)."""
    match = _TRAILING_COMMENT.fullmatch(text)
    return match.group(1) if match and match.group(1) else text


def _convert(kind: Any, text: str) -> Any:
    if kind == "ints":
        # parse_route: atoi on each comma-separated part, so a comment ends each part's number
        return [int(_number_text(part)) for part in text.split(",") if part != ""]
    if kind in (int, float):
        text = _number_text(text)
    if kind is str and ("#" in text or ";" in text):
        raise ValueError(text)
    if kind is int:
        # Darknet reads ints with atoi: "1.0" would be 1; accept an integral float, nothing else.
        number = float(text)
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    if kind is float:
        return float(text)
    return text


@dataclass(frozen=True)
class _Line:
    """One line of the cfg text, for error messages: ``<path>:<number>: ...``."""

    path: str
    number: int
    raw: str

    def error(self, message: str) -> DarknetCfgError:
        return DarknetCfgError(f"{self.path}:{self.number}: {message}")


def _header(line: str, at: _Line) -> Section:
    """The section a ``[header]`` line opens (an alias is mapped to its canonical kind)."""
    if not line.endswith("]"):
        raise at.error(f"section header {at.raw.strip()!r} lacks ']'")
    header = line[1:-1]
    kind = SECTION_ALIASES.get(header.lower())
    if kind is None:
        close = difflib.get_close_matches(header, list(SECTION_ALIASES), n=2)
        hint = f"; did you mean {', '.join(f'[{c}]' for c in close)}?" if close else ""
        raise at.error(
            f"unknown or unsupported section [{header}]; supported: "
            f"{', '.join(f'[{s}]' for s in sorted(set(SECTION_ALIASES.values())))}{hint}"
        )
    return Section(kind=kind, header=header, line=at.number)


def _read_key(section: Section, line: str, at: _Line) -> None:
    """Store one ``key=value`` line of ``section``: a typed value, or a known unused key."""
    key, eq, value = line.partition("=")
    if not eq or not key:
        raise at.error(f"[{section.header}]: expected key=value, got {at.raw.strip()!r}")
    if key in section.written:  # Darknet's option_find returns the first: later ones go unread
        section.written[key].append(at.number)
        return
    schema = _SCHEMA[section.kind]
    if key in schema:
        kind_of = schema[key][0]
        try:
            section.values[key] = _convert(kind_of, value)
        except ValueError:
            expected = {"ints": "a comma-separated list of integers", int: "an integer",
                        float: "a number"}.get(kind_of, "a name")  # fmt: skip
            if kind_of is str:
                raise at.error(
                    f"[{section.header}] {key}: {value!r} holds a comment; Darknet reads a name "
                    "whole, comment included (an unknown activation becomes relu), so remove "
                    "the '#'/';' part"
                ) from None
            raise at.error(
                f"[{section.header}] {key}: expected {expected}, got {value!r}"
            ) from None
        section.lines[key] = at.number
    elif key in _KNOWN_UNUSED[section.kind]:
        section.unused[key] = value
    else:
        options = sorted(schema) + sorted(_KNOWN_UNUSED[section.kind])
        close = difflib.get_close_matches(key, options, n=2)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise at.error(
            f"[{section.header}]: unknown or unsupported key {key!r}; "
            f"supported: {', '.join(sorted(schema)) or '(none)'}{hint}"
        )
    section.written[key] = [at.number]


def _warn_repeated(section: Section, path: str) -> None:
    """Log each key ``section`` repeats, once, with every line: Darknet uses the first."""
    for key, numbers in section.written.items():
        if len(numbers) > 1:
            later = ", ".join(map(str, numbers[1:]))
            log.warning(
                "%s:%d: [%s] %s: given again on line%s %s; Darknet uses the first (line %d) "
                "and ignores the rest (option_find returns the first match)",
                path, numbers[0], section.header, key, "s" if len(numbers) > 2 else "", later,
                numbers[0],
            )  # fmt: skip


def _assemble(sections: list[Section], path: str) -> DarknetCfg:
    """Fill Darknet's defaults in and check the layout: ``[net]`` first and only there, layers."""
    if not sections or sections[0].kind != "net":
        where = sections[0].line if sections else 1
        raise DarknetCfgError(f"{path}:{where}: a cfg must start with a [net] section")
    for section in sections:
        _warn_repeated(section, path)
        for key, (kind_of, default) in _SCHEMA[section.kind].items():
            if key in section.values:
                continue
            if default is None and kind_of == "ints":
                raise DarknetCfgError(
                    f"{path}:{section.line}: [{section.header}]: the key {key!r} is required"
                )
            section.values[key] = default
    net, layers = sections[0], sections[1:]
    if extra := next((s for s in layers if s.kind == "net"), None):
        raise DarknetCfgError(f"{path}:{extra.line}: [{extra.header}] may appear only first")
    if not layers:
        raise DarknetCfgError(f"{path}:{net.line}: the cfg has no layers after [net]")
    return DarknetCfg(path=path, net=net, layers=layers)


def parse_cfg_text(text: str, path: str = "<cfg>") -> DarknetCfg:
    """Parse the text of a cfg file; ``path`` is only used in error messages.

    Raises:
        DarknetCfgError: on the first line that breaks the grammar, naming ``path`` and the line.
    """
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())  # Darknet's strip(): every whitespace character goes
        if not line or line[0] in "#;":
            continue
        at = _Line(path, number, raw)
        if line[0] == "[":
            sections.append(_header(line, at))
        elif not sections:
            raise at.error(f"{raw.strip()!r} comes before any [section]")
        else:
            _read_key(sections[-1], line, at)
    return _assemble(sections, path)


def parse_cfg(path: str | Path) -> DarknetCfg:
    """Read and parse a cfg file (see :func:`parse_cfg_text`).

    The file must be UTF-8 text (ASCII, as every Darknet cfg is, included) of at most
    :data:`MAX_CFG_BYTES`; anything else is one :class:`DarknetCfgError` naming the file.
    """
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CFG_BYTES + 1)  # bounded: also for /dev/zero or a FIFO
    except OSError as err:
        raise DarknetCfgError(f"{file}: cannot read the Darknet cfg: {err.strerror}") from None
    if len(raw) > MAX_CFG_BYTES:
        raise DarknetCfgError(
            f"{file}: more than {MAX_CFG_BYTES:,} bytes, not a Darknet cfg (the largest are "
            "tens of KB)"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DarknetCfgError(
            f"{file}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the cfg as "
            "UTF-8 or ASCII"
        ) from None
    return parse_cfg_text(text, str(file))
