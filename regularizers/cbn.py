"""``regularizer=cbn``: Cross-Iteration BN (Yao et al., CVPR 2021, ``layers.cross_iteration_bn``)
in place of every BatchNorm fed by a convolution, bound to that convolution; nothing is placed
in the groups. ``cbn_mode=cmbn`` is Darknet's ``batch_normalize=2``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regularizers.base import RegularizerConfig
from regularizers.registry import Regularizer, register
from runners.core.checks import at_least, one_of


@dataclass
class CbnConfig(RegularizerConfig):
    """Cross-Iteration BN's options (``layers.cross_iteration_bn``)."""

    #: Mini-batches per window (1 = plain BN).
    window: int = 4
    #: Optimizer steps of plain BN first.
    burnin: int = 0
    #: ``cbn``: the paper's compensated window; ``cmbn``: Darknet's batch_normalize=2.
    cbn_mode: str = "cbn"


def check_keys(reg: Any) -> None:
    """The mode is one the layer knows; window >= 1, burn-in >= 0."""
    from layers.cross_iteration_bn import MODES

    one_of("regularizer.cbn_mode", reg.cbn_mode, MODES)
    at_least("regularizer.window", reg.window, 1)
    at_least("regularizer.burnin", reg.burnin, 0, " optimizer steps")


def convert_bn(target: Any, options: Mapping[str, Any]) -> list[str]:
    """Every BatchNorm fed by a convolution becomes Cross-Iteration BN: ``cbn:<path>`` each."""
    import torch

    from layers.cbn_convert import convert_to_cbn

    device = next(target.model.parameters()).device
    size = target.input_size
    converted = convert_to_cbn(
        target.model,
        window=int(options["window"]),
        burnin=int(options["burnin"]),
        mode=str(options["cbn_mode"]),
        example_input=torch.zeros(1, 3, size, size, device=device),
    )
    return [f"cbn:{path}" for path in converted]


SPEC = register(
    Regularizer(
        name="cbn",
        schema=CbnConfig,
        order=30,
        rules=(check_keys,),
        steps=(convert_bn,),
        converts_bn=True,
    )
)
