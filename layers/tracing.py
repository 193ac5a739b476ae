"""One eval-mode forward pass to observe a model through hooks, leaving it as it was."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["traced_forward"]


def traced_forward(
    model: nn.Module, example_input: torch.Tensor, hooks: Sequence[RemovableHandle]
) -> None:
    """Run ``model(example_input)`` in eval mode without gradients, then restore its mode and
    remove ``hooks`` (also when the forward raises)."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
