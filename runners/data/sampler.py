"""The training order: one permutation per epoch, a pure function of (seed, epoch).

``DataLoader(shuffle=True, generator=g)`` draws each epoch's order from a generator whose state
moves on every epoch, so resuming in the middle of a run would need that state and a way to skip
what was already consumed. Here the order of epoch ``e`` is ``randperm(n, seed=(seed, e))`` and
:meth:`EpochShuffleSampler.set_epoch` can start it at any sample, so a resumed job sees exactly
the batches an uninterrupted one would (``DistributedSampler`` has the same ``set_epoch``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from runners.core.seeds import derived_seed

__all__ = ["EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Indices ``0..n-1`` in the order of epoch ``set_epoch(e)``, from sample ``start`` on."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order; skip its first ``start`` samples (a resumed epoch)."""
        if not 0 <= start <= self.size:
            raise ValueError(f"start must be in [0, {self.size}], got {start}")
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        yield from self.order(self.epoch)[self.start :].tolist()

    def __len__(self) -> int:
        return self.size - self.start
