"""Parameter and FLOP counts of a model, as printed by ``python -m models``.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as two
floating-point operations (so its numbers are 2 x MACs, the convention of Darknet's BFLOPs and
twice the "GMACs" that timm and fvcore print).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Complexity", "measure_complexity"]


@dataclass(frozen=True)
class Complexity:
    #: Every parameter (weights, biases, BN affine).
    params: int
    #: Convolution and classifier weights only: Darknet's and the CSPNet README's "#Parameter"
    #: (Darknet's classifier is a 1x1 convolution; biases and BN are not counted).
    weight_params: int
    flops: int
    input_size: int


def measure_complexity(model: nn.Module, input_size: int, in_chans: int = 3) -> Complexity:
    """Count parameters and the FLOPs of one forward pass of a single ``input_size`` image."""
    params = sum(p.numel() for p in model.parameters())
    weight_params = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, in_chans, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return Complexity(
        params=params,
        weight_params=weight_params,
        flops=int(counter.get_total_flops()),
        input_size=input_size,
    )
