"""Stopping a job whose training loss has diverged (status ``diverged`` in its run record).

Two rules, checked on every training forward's loss: a NaN or infinite loss, and a loss above
``divergence.factor`` times the first forward's loss (the starting value; ``null`` turns this
rule off). A run past either will not come back, and every further step only spends the budget
of the sweep it belongs to.

The check does not synchronise the device on every forward: losses are kept as device tensors
and looked at together every ``divergence.check_every`` forwards, and once more at the end of
each epoch (:meth:`DivergenceGuard.flush`), so a GPU waits once per check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["DivergedError", "DivergenceGuard"]


class DivergedError(RuntimeError):
    """The training loss diverged; the message says which rule, the value and the forward."""


class DivergenceGuard:
    """Watches training losses; raises :class:`DivergedError` at the first check that fails.

    Args:
        factor: stop when a loss exceeds ``factor`` x the first loss; ``None`` for NaN/inf only.
        check_every: forwards between checks (each check is one device synchronisation).
    """

    def __init__(self, factor: float | None = 10.0, check_every: int = 10) -> None:
        if factor is not None and not factor > 1:
            raise ValueError(f"factor must be > 1 or None, got {factor}")
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.factor = factor
        self.check_every = check_every
        self.start: float | None = None
        self.forwards = 0
        self._pending: list[torch.Tensor] = []

    @classmethod
    def from_config(cls, divergence: Any) -> DivergenceGuard:
        """From the ``divergence`` config group (``factor``, ``check_every``)."""
        factor = divergence.factor
        return cls(None if factor is None else float(factor), int(divergence.check_every))

    def observe(self, loss: torch.Tensor) -> None:
        """Take one forward's loss (a scalar tensor on any device)."""
        self._pending.append(loss.detach().float().reshape(()))
        if self.start is None or len(self._pending) >= self.check_every:
            self.flush()

    def flush(self) -> None:
        """Check every loss taken since the last check (one device synchronisation)."""
        if not self._pending:
            return
        values = torch.stack(self._pending).cpu().tolist()
        self._pending.clear()
        for value in values:
            self.forwards += 1
            self._check(value)

    def _check(self, value: float) -> None:
        where = f"at training forward {self.forwards}"
        if not math.isfinite(value):
            raise DivergedError(f"training loss is {value} {where}")
        if self.start is None:
            self.start = value
            return
        if self.factor is not None and value > self.factor * self.start:
            raise DivergedError(
                f"training loss {value:.4g} {where} is above divergence.factor={self.factor:g} "
                f"x the first loss {self.start:.4g}"
            )

    def state_dict(self) -> dict[str, Any]:
        """The reference loss and the forwards counted, for a checkpoint (after :meth:`flush`)."""
        if self._pending:
            raise RuntimeError("flush() the pending losses before saving the guard's state")
        return {"start": self.start, "forwards": self.forwards}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: a resumed job keeps the reference of its first loss."""
        start = state.get("start")
        self.start = None if start is None else float(start)
        self.forwards = int(state.get("forwards", 0))

    def watch(self, loss_fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``loss_fn`` wrapped so that every loss it returns is observed (a criterion, or a
        task's ``loss(model, images, targets)``)."""

        def watched(*args: Any, **kwargs: Any) -> torch.Tensor:
            loss = loss_fn(*args, **kwargs)
            self.observe(loss)
            return loss

        return watched
