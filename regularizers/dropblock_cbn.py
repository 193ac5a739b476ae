"""``regularizer=dropblock_cbn``: DropBlock's placement, then Cross-Iteration BN everywhere BN
was (the seed's "do they help together?"). Made of the two entries' schemas, rules and steps."""

from __future__ import annotations

from dataclasses import dataclass

from regularizers import cbn, dropblock
from regularizers.registry import Regularizer, register


@dataclass
class DropBlockCbnConfig(dropblock.DropBlockConfig, cbn.CbnConfig):
    """DropBlock's keys and Cross-Iteration BN's."""


SPEC = register(
    Regularizer(
        name="dropblock_cbn",
        schema=DropBlockCbnConfig,
        order=40,
        rules=dropblock.SPEC.rules + cbn.SPEC.rules,
        steps=dropblock.SPEC.steps + cbn.SPEC.steps,
        places_blocks=dropblock.SPEC.places_blocks,
        converts_bn=cbn.SPEC.converts_bn,
    )
)
