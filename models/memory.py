"""How much memory training a backbone needs, estimated on PyTorch's ``meta`` device.

The backbone is built and run on ``meta`` (shapes only: nothing is allocated, nothing is
computed), counting its parameters and buffers and the output of every leaf module for one
sample. The estimate for a mini-batch of ``B`` samples, in fp32:

    4 bytes x (3 x parameters + buffers + B x outputs per sample)

(weights, their gradients and SGD's momentum; BN's running statistics; every layer output kept
for the backward pass). It is rough (in-place activations are counted, autocast halves the real
outputs, the allocator adds its own), and meant to catch a network that cannot be trained at all,
such as a Darknet cfg with ``filters=100000000``, before the allocator is asked for petabytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from models.registry import create_backbone

__all__ = ["MemoryEstimate", "estimate_training_memory"]

_BYTES = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """The counts behind an estimate; :meth:`total_bytes` scales them to a mini-batch."""

    parameters: int
    buffers: int
    #: Elements of every leaf module's output for one sample.
    outputs_per_sample: int
    #: The leaf module with the most weights, and how many.
    largest_module: str
    largest_parameters: int

    def state_bytes(self) -> int:
        """Weights, gradients, momentum and buffers."""
        return _BYTES * (3 * self.parameters + self.buffers)

    def activation_bytes(self, mini_batch: int) -> int:
        """Every leaf module's output for ``mini_batch`` samples."""
        return _BYTES * mini_batch * self.outputs_per_sample

    def total_bytes(self, mini_batch: int) -> int:
        return self.state_bytes() + self.activation_bytes(mini_batch)


@functools.lru_cache(maxsize=32)
def _measure(name: str, input_size: int, kwargs: tuple[tuple[str, object], ...]) -> MemoryEstimate:
    with torch.device("meta"):
        model = create_backbone(name, num_classes=1000, **dict(kwargs))
    outputs = 0

    def count(_module: nn.Module, _inputs: object, out: object) -> None:
        nonlocal outputs
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                outputs += tensor.numel()  # the forward below is of one sample

    hooks = [m.register_forward_hook(count) for m in model.modules() if not any(m.children())]
    largest, largest_count = "", 0
    for path, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own > largest_count:
            largest, largest_count = path, own
    model.eval()
    with torch.no_grad():
        model(torch.empty(1, 3, input_size, input_size, device="meta"))
    for hook in hooks:
        hook.remove()
    return MemoryEstimate(
        parameters=sum(p.numel() for p in model.parameters()),
        buffers=sum(b.numel() for b in model.buffers()),
        outputs_per_sample=outputs,
        largest_module=largest,
        largest_parameters=largest_count,
    )


def estimate_training_memory(name: str, input_size: int, **kwargs: object) -> MemoryEstimate:
    """The counts for backbone ``name`` at ``input_size`` x ``input_size`` (1000 classes).

    Raises whatever the backbone's builder raises for ``kwargs`` it cannot take.
    """
    return _measure(name, input_size, tuple(sorted(kwargs.items())))
