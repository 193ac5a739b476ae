"""``regularizer=cbn``: Cross-Iteration BN (Yao et al., CVPR 2021, ``layers.cross_iteration_bn``)
in place of every BatchNorm fed by a convolution, bound to that convolution; nothing is placed
in the groups. ``cbn_mode=cmbn`` is Darknet's ``batch_normalize=2``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regularizers.base import RegularizerConfig
from regularizers.registry import Regularizer, register
from runners.core.checks import at_least, one_of

log = logging.getLogger(__name__)


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


def no_batchnorm_message(model: Any) -> str:
    """Why CBN has nothing to replace: the normalisation the network uses instead, by class."""
    from layers.cbn_convert import other_norm_layers

    found = other_norm_layers(model)
    if not found:
        return "cbn replaces BatchNorm layers fed by a convolution; this network has none"
    kinds = "; ".join(
        f"{kind} ({paths[0]}" + (f" and {len(paths) - 1} more)" if len(paths) > 1 else ")")
        for kind, paths in found.items()
    )
    return (
        "cbn replaces BatchNorm layers fed by a convolution, and this network normalises with "
        f"{kinds} instead: Cross-Iteration BN has nothing to replace (use a BatchNorm backbone)"
    )


def convert_bn(target: Any, options: Mapping[str, Any]) -> list[str]:
    """Every BatchNorm fed by a convolution becomes Cross-Iteration BN: ``cbn:<path>`` each.

    A BatchNorm fed by anything else (DenseNet's norms after a concatenation) stays BatchNorm,
    logged once; a network with no BatchNorm fed by a convolution (ConvNeXt's LayerNorm, a ViT)
    is a ``ValueError`` naming the normalisation it uses."""
    from layers.cbn_convert import convert_to_cbn, find_conv_bn_pairs

    example = target.example_input()
    pairs, unbound = find_conv_bn_pairs(target.model, example)
    if not pairs:
        raise ValueError(no_batchnorm_message(target.model))
    if unbound:
        log.warning(
            "cbn: %d BatchNorm layer(s) fed by something other than a convolution stay "
            "BatchNorm: %s", len(unbound), ", ".join(unbound[:8]) + (" ..." if len(unbound) > 8 else ""),
        )  # fmt: skip
    converted = convert_to_cbn(
        target.model,
        window=int(options["window"]),
        burnin=int(options["burnin"]),
        mode=str(options["cbn_mode"]),
        example_input=example,
        keep_unbound=True,
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
