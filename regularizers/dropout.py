"""``regularizer=dropout``: element-wise ``nn.Dropout(p)`` (Srivastava et al., JMLR 2014) at
DropBlock's positions (after every BN and on the shortcut of each block of a group with p > 0),
with the group's rate, so the two compare like for like."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regularizers.base import RegularizerConfig
from regularizers.placement import in_groups
from regularizers.registry import Regularizer, register


def dropout(group: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """``nn.Dropout`` at the group's rate."""
    from torch import nn

    return nn.Dropout(group["p"])


SPEC = register(
    Regularizer(
        name="dropout", schema=RegularizerConfig, order=10, steps=(in_groups("dropout", dropout),)
    )
)
