"""The training loop, a few lines around hooks (detectron2's ``engine/train_loop.py`` pattern).

:class:`Trainer` runs epochs of optimizer steps and nothing else; everything a run does around
them (the regularizers' schedule, checkpoints, evaluation, the run record, tracking, progress,
divergence, Optuna pruning) is a :class:`Hook`, assembled once by the caller
(``runners.training.fit``). The trainer takes explicit arguments, never a config.

State that a checkpoint must carry is the trainer's :class:`~runners.engine.checkpoint.LoopPosition`
(:meth:`Trainer.position`); a resumed trainer starts from one, in the middle of an epoch if need
be, and reaches the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from runners.dist import distributed
from runners.engine.checkpoint import LoopPosition
from runners.engine.loop import LossFn, train_step

__all__ = ["EpochResult", "Hook", "StepSettings", "Trainer"]


@dataclass(frozen=True)
class StepSettings:
    """How a batch becomes an optimizer step."""

    #: Forwards per optimizer step (gradient accumulation).
    subdivisions: int
    #: The learning rate of each global step.
    lr_for_step: Callable[[int], float]
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    channels_last: bool = False
    #: uint8 batch on the device -> the network's float input.
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
    #: ``move_targets(targets, device)``; default ``targets.to(device)``.
    move_targets: Callable[[Any, torch.device], Any] | None = None


@dataclass
class EpochResult:
    """What one epoch gave; hooks add to ``metrics`` (evaluation) and read the rest."""

    epoch: int
    #: Mean training loss over the epoch (all processes).
    train_loss: float
    #: Training images this run of the epoch saw (a resumed epoch: since the resume).
    images: int
    seconds: float
    lr: float
    metrics: dict[str, float] = field(default_factory=dict)


class Hook:
    """Called by :class:`Trainer` around its loop; every method is optional."""

    def before_train(self, trainer: Trainer) -> None:
        """Once, before the first epoch (also after a resume)."""

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        """Before each epoch; ``trainer.position.step_in_epoch`` > 0 when it resumes midway."""

    def before_step(self, trainer: Trainer, step: int) -> None:
        """Before the optimizer step ``step`` (0-based over the run)."""

    def after_step(self, trainer: Trainer) -> None:
        """After each optimizer step; :meth:`Trainer.position` says where the loop stands."""

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        """After each epoch, in the order the hooks were given."""


class Trainer:
    """Epochs of :func:`~runners.engine.loop.train_step` over ``loader``, with hooks.

    Args:
        model: the module the optimizer updates (a DDP wrapper may be given as ``train_model``).
        optimizer: its optimizer; the trainer sets each step's learning rate.
        loader: yields ``(images, targets)`` batches; its length is the steps of an epoch.
        loss_fn: ``loss(model, images, targets)`` of one chunk.
        settings: how a batch becomes a step.
        device: where batches go.
        hooks: called in this order.
        train_model: what the steps run through (default ``model``).
        start: where to start (a checkpoint's position), default the beginning.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: Any,
        loss_fn: LossFn,
        settings: StepSettings,
        *,
        device: torch.device,
        hooks: Sequence[Hook] = (),
        train_model: nn.Module | None = None,
        start: LoopPosition | None = None,
    ) -> None:
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.loss_fn, self.settings, self.device = loss_fn, settings, device
        self.hooks = list(hooks)
        self.train_model = train_model if train_model is not None else model
        self.steps_per_epoch = len(loader)
        self._at = start or LoopPosition()
        self._loss_sum = torch.zeros((), device=device)
        self._epoch_start: tuple[int, float, int, float] = (0, 0.0, 0, 0.0)

    def position(self) -> LoopPosition:
        """Where the loop stands now: after a step, inside its epoch; between epochs, at the next."""
        images, seconds, seen_before, started = self._epoch_start
        at = self._at
        if at.step_in_epoch == 0:
            return LoopPosition(
                epoch=at.epoch, step=at.step, train_images=at.train_images, train_time=at.train_time
            )
        return LoopPosition(
            epoch=at.epoch,
            step=at.step,
            step_in_epoch=at.step_in_epoch,
            epoch_loss_sum=float(self._loss_sum),
            epoch_seen=at.epoch_seen,
            train_images=images + at.epoch_seen - seen_before,
            train_time=seconds + time.perf_counter() - started,
        )

    @property
    def step_in_epoch(self) -> int:
        """Steps of the current epoch taken so far (cheap: no device synchronisation)."""
        return self._at.step_in_epoch

    @property
    def throughput(self) -> float | None:
        """Training images per second over the run so far (epochs completed)."""
        return self._at.train_images / self._at.train_time if self._at.train_time > 0 else None

    def train(self, epochs: int) -> None:
        """Run from the start position to the end of epoch ``epochs``."""
        for hook in self.hooks:
            hook.before_train(self)
        for epoch in range(self._at.epoch, epochs + 1):
            result = self._run_epoch(epoch)
            for hook in self.hooks:
                hook.after_epoch(self, result)

    def _run_epoch(self, epoch: int) -> EpochResult:
        at = self._at
        resumed = at.epoch == epoch and at.step_in_epoch > 0
        if not resumed:
            at.step_in_epoch, at.epoch_loss_sum, at.epoch_seen = 0, 0.0, 0
        at.epoch = epoch
        self._epoch_start = (at.train_images, at.train_time, at.epoch_seen, time.perf_counter())
        for hook in self.hooks:
            hook.before_epoch(self, epoch)
        started = time.perf_counter()
        self._epoch_start = (at.train_images, at.train_time, at.epoch_seen, started)
        seen_before = at.epoch_seen
        self._loss_sum = torch.full((), at.epoch_loss_sum, device=self.device)
        self.model.train()
        for images, targets in self.loader:
            self._step(images, targets)
        loss_sum, seen_all = distributed.all_reduce_sum(
            self._loss_sum, torch.tensor(at.epoch_seen, device=self.device)
        )
        seen = int(seen_all.item())
        seconds = time.perf_counter() - started
        new_images = seen - seen_before  # a resumed epoch counts the samples since the resume
        at.train_images += new_images
        at.train_time += seconds
        at.epoch, at.step_in_epoch, at.epoch_loss_sum, at.epoch_seen = epoch + 1, 0, 0.0, 0
        lr = self.optimizer.param_groups[0]["lr"]
        return EpochResult(epoch, (loss_sum / max(seen, 1)).item(), new_images, seconds, lr)

    def _step(self, images: torch.Tensor, targets: Any) -> None:
        settings, at = self.settings, self._at
        images = images.to(self.device, non_blocking=True)
        if settings.normalize is not None:
            images = settings.normalize(images)
        layout = torch.channels_last if settings.channels_last else torch.contiguous_format
        images = images.contiguous(memory_format=layout)
        move = settings.move_targets
        targets = move(targets, self.device) if move else targets.to(self.device)
        lr = settings.lr_for_step(at.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for hook in self.hooks:
            hook.before_step(self, at.step)
        loss = train_step(
            self.train_model, images, targets, self.optimizer, self.loss_fn,
            settings.subdivisions, settings.autocast,
        )  # fmt: skip
        self._loss_sum += loss * images.shape[0]
        at.epoch_seen += images.shape[0]
        at.step += 1
        at.step_in_epoch += 1
        for hook in self.hooks:
            hook.after_step(self)
