"""Optimizer and learning-rate schedule of a run.

- SGD with momentum; weight decay on convolution and linear weights only, never on BatchNorm
  parameters or biases (the "no bias decay" of Bag of Tricks, He et al. 2019, arXiv 1812.01187).
- Linear scaling: ``lr = base_lr * batch / 256`` (Goyal et al. 2017, arXiv 1706.02677), where
  ``batch`` is samples per optimizer step, so subdivisions do not change the learning rate.
- Linear warmup from 0 over ``warmup_epochs``, then cosine decay to 0 (Loshchilov and Hutter,
  SGDR, arXiv 1608.03983), stepped once per optimizer step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["build_optimizer", "lr_at", "scaled_lr"]


def scaled_lr(base_lr: float, batch: int) -> float:
    """The peak learning rate for ``batch`` samples per step: ``base_lr * batch / 256``."""
    return base_lr * batch / 256


def build_optimizer(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> torch.optim.SGD:
    """SGD whose ``weight_decay`` applies to parameters with 2+ dimensions only."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * progress))
