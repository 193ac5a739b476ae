"""``backbone=darknet``: any Darknet classifier cfg as a registered backbone.

The cfg's own classifier (its last ``[convolutional]`` or ``[connected]`` layer) gets the data
set's number of classes; everything else is built as the cfg writes it. The group map is not
static: :class:`~models.darknet.build.DarknetNet` infers it from the cfg (stages by output stride
at the ``[net]`` input size) and reports it through ``group_modules()`` / ``group_paths()``.
"""

from __future__ import annotations

import logging

from models.darknet.build import DarknetNet
from models.darknet.parse import parse_cfg
from models.registry import register_backbone

__all__ = ["darknet"]

log = logging.getLogger(__name__)
_reported: set[str] = set()

#: ``regularizer.cfg_dropout`` values: keep the cfg's [dropout] layers or build them as identity.
CFG_DROPOUT = ("keep", "remove")


def report_unused(cfg_path: str, unused: dict[str, dict[str, str]]) -> None:
    """Log, once per file and process, the Darknet keys the harness reads but does not use."""
    if cfg_path in _reported or not unused:
        return
    _reported.add(cfg_path)
    for section, keys in unused.items():
        listed = ", ".join(f"{k}={v}" for k, v in keys.items())
        log.warning(
            "%s: [%s] keys not used by the harness (its own optim/data settings apply): %s",
            cfg_path,
            section,
            listed,
        )


@register_backbone(groups=None)
def darknet(
    num_classes: int,
    cfg: str | None = None,
    dropout: str = "keep",
    input_size: int | None = None,
) -> DarknetNet:
    """A Darknet classifier cfg (``backbone.cfg=path/to/net.cfg``), built layer for layer."""
    if not cfg:
        raise ValueError("backbone darknet needs a cfg file: backbone.cfg=path/to/net.cfg")
    if dropout not in CFG_DROPOUT:
        raise ValueError(f"cfg dropout must be one of {CFG_DROPOUT}, got {dropout!r}")
    parsed = parse_cfg(cfg)
    unused: dict[str, dict[str, str]] = {}
    for section in [parsed.net, *parsed.layers]:
        if section.unused:
            unused.setdefault(section.kind, {}).update(section.unused)
    report_unused(parsed.path, unused)
    return DarknetNet(
        parsed, num_classes=num_classes, input_size=input_size, keep_dropout=dropout == "keep"
    )
