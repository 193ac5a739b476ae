"""``regularizer=dropblock``: DropBlock (Ghiasi, Lin and Le 2018, ``layers.drop_block``) after
every BN and on the shortcut of each block of a group with p > 0, as in the official ResNet code.

Its keys are ``DropBlock2d``'s options; the values each may take come from the layers
themselves (``layers.drop_block``, ``layers.schedule``), so config and layers cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regularizers.base import RegularizerConfig, own_keys
from regularizers.placement import in_groups
from regularizers.registry import Regularizer, register
from runners.core.checks import one_of


@dataclass
class DropBlockConfig(RegularizerConfig):
    """DropBlock's options (``layers.drop_block``): defaults are the paper's."""

    scope: str = "channel"
    rescale: str = "batch"
    gamma: str = "paper"
    schedule: str = "linear"
    kernel: str = "auto"


def check_keys(reg: Any) -> None:
    """Each option is one the layers know."""
    from layers.drop_block import GAMMAS, KERNELS, RESCALES, SCOPES
    from layers.schedule import SCHEDULES

    choices = {
        "scope": SCOPES,
        "rescale": RESCALES,
        "gamma": GAMMAS,
        "schedule": SCHEDULES,
        "kernel": KERNELS,
    }
    for key in own_keys(DropBlockConfig):
        one_of(f"regularizer.{key}", reg[key], choices[key])


def drop_block(group: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """``DropBlock2d`` with the group's rate and block, and the regularizer's options."""
    from layers.drop_block import DropBlock2d

    kwargs = {key: options[key] for key in own_keys(DropBlockConfig)}
    return DropBlock2d(group["p"], group["block_size"], size_mode=group["size_mode"], **kwargs)


SPEC = register(
    Regularizer(
        name="dropblock",
        schema=DropBlockConfig,
        order=20,
        rules=(check_keys,),
        steps=(in_groups("dropblock", drop_block, needs_maps=True),),
        places_blocks=True,
    )
)
