"""The keys every regularizer has, and the settings of one group of the backbone.

Each regularizer's schema (``regularizers/<name>.py``) subclasses :class:`RegularizerConfig`
with its own keys only, so a composed config holds the keys of the regularizer chosen and no
other's (``regularizer=none`` has no ``scope``; overriding one fails naming the key).

Light to import (dataclasses only): Hydra imports the schemas for ``--help`` and every tab
completion.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

__all__ = ["GROUPS", "GroupRegularizerConfig", "RegularizerConfig", "defaults", "own_keys"]

#: Groups are the four backbone stages of the DropBlock paper (ResNet conv2_x .. conv5_x).
GROUPS = ("1", "2", "3", "4")


@dataclass
class GroupRegularizerConfig:
    """The regularizer's settings for one group (stage) of the backbone.

    Darknet's ``[dropout]`` key names are accepted as aliases: ``probability`` for ``p``,
    ``dropblock_size_abs`` for ``block_size`` with ``size_mode=abs``, ``dropblock_size_rel`` (or
    ``dropblock_size``) for ``block_size`` with ``size_mode=rel``. When both an alias and its
    canonical key are set, the alias wins (as the cfg file is what a Darknet user wrote).
    """

    p: float = 0.0
    #: DropBlock block side: pixels (``size_mode=abs``) or a fraction of the map side (``rel``).
    block_size: float = 7
    size_mode: str = "abs"
    probability: float | None = None
    dropblock_size_abs: int | None = None
    dropblock_size_rel: float | None = None
    dropblock_size: float | None = None


@dataclass
class RegularizerConfig:
    """Which regularizer, and its settings per group: ``groups: {3: {p: ...}, 4: {...}}``.

    The schema of ``regularizer=none`` and ``dropout`` as it is; the others add their own keys.
    """

    name: str = "none"
    #: ``backbone=darknet`` only: ``keep`` the ``[dropout]`` layers the cfg writes, or ``remove``
    #: them so that this regularizer alone decides what is placed.
    cfg_dropout: str = "keep"
    #: Every group 1..4 is present (p = 0 places nothing), so any group's settings can be
    #: overridden from the command line: ``regularizer.groups.2.p=0.01``.
    groups: dict[str, GroupRegularizerConfig] = field(
        default_factory=lambda: {g: GroupRegularizerConfig() for g in GROUPS}
    )


def own_keys(schema: type[RegularizerConfig]) -> tuple[str, ...]:
    """The keys ``schema`` adds to :class:`RegularizerConfig` (DropBlock's ``scope``, ...)."""
    common = {f.name for f in fields(RegularizerConfig)}
    return tuple(f.name for f in fields(schema) if f.name not in common)


def defaults(schema: type[RegularizerConfig]) -> dict[str, Any]:
    """The schema's plain default values (``groups`` left out): what a missing option takes."""
    return {f.name: f.default for f in fields(schema) if f.default is not MISSING}
