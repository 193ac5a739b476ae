"""One optimizer step in ``subdivisions`` forwards (Darknet's gradient accumulation).

An optimizer step sees ``batch`` samples in ``subdivisions`` forwards of
``mini_batch = batch / subdivisions`` each. Each forward's loss is weighted by its share of the
step's samples, so the summed gradient equals that of one forward over the whole batch, except
through BatchNorm, which only sees its mini-batch (the effect the seed's thread argues about).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from runners.dist import distributed

__all__ = ["LossFn", "chunk_bounds", "classification_loss", "train_step"]

#: ``loss(model, images, targets)``: the mean loss of one chunk (a mini-batch).
LossFn = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]


def chunk_bounds(total: int, subdivisions: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each of ``subdivisions`` chunks of ``total`` samples, sized as
    ``Tensor.tensor_split`` sizes them (the first ``total % subdivisions`` one larger)."""
    size, extra = divmod(total, subdivisions)
    bounds, start = [], 0
    for index in range(subdivisions):
        stop = start + size + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    targets: Any,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    subdivisions: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """One optimizer step over ``images`` in ``subdivisions`` forwards; returns the mean loss
    (detached, not synchronised).

    ``loss_fn(model, images, targets)`` is the mean loss of one chunk; ``targets`` is anything
    sliceable in step with ``images`` (a label tensor, a list of box dicts).
    """
    optimizer.zero_grad(set_to_none=True)
    total = images.shape[0]
    loss_sum = torch.zeros((), device=images.device)
    chunks = [(start, stop) for start, stop in chunk_bounds(total, subdivisions) if stop > start]
    for index, (start, stop) in enumerate(chunks):
        # Under DDP, gradients are all-reduced once, after the last forward of the step.
        with distributed.accumulate(model, last=index == len(chunks) - 1):
            with autocast():
                loss = loss_fn(model, images[start:stop], targets[start:stop])
            weighted = loss * ((stop - start) / total)
            weighted.backward()
        loss_sum += weighted.detach().float()
    optimizer.step()
    return loss_sum


def classification_loss(criterion: nn.Module) -> LossFn:
    """``criterion(model(images), targets)`` as a :func:`train_step` loss."""
    return lambda model, images, targets: criterion(model(images), targets)
