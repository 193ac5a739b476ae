"""A group's regularizer settings as the layers read them: Darknet's key names resolved.

Which regularizer places what is the registry's (``regularizers/``, which imports ``layers``;
``layers`` imports neither ``regularizers`` nor ``models``). The placement primitives are
``layers.placement.place_in_groups`` (a module after every BN and on every shortcut of a
group) and ``layers.cbn_convert.convert_to_cbn``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["effective_group_settings"]


def effective_group_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A group's ``p``, ``block_size`` and ``size_mode`` with Darknet's aliases applied.

    ``probability`` -> ``p``; ``dropblock_size_abs`` -> ``block_size``, ``size_mode=abs``;
    ``dropblock_size_rel`` or ``dropblock_size`` -> ``block_size``, ``size_mode=rel``
    (Darknet's parser ignores rel when abs is also given, and so does this).
    """
    get = settings.get
    p = get("probability") if get("probability") is not None else get("p", 0.0)
    block_size, size_mode = get("block_size", 7), get("size_mode", "abs")
    if get("dropblock_size_abs") is not None:
        block_size, size_mode = get("dropblock_size_abs"), "abs"
    elif get("dropblock_size_rel") is not None:
        block_size, size_mode = get("dropblock_size_rel"), "rel"
    elif get("dropblock_size") is not None:
        block_size, size_mode = get("dropblock_size"), "rel"
    if size_mode == "abs" and float(block_size).is_integer():
        block_size = int(block_size)
    return {"p": float(p), "block_size": block_size, "size_mode": size_mode}
