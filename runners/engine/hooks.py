"""The hooks a job's training runs with, each one concern (``runners.engine.trainer.Hook``).

They take what they act on as arguments (a record, a guard, callables), never a config;
``runners.training.fit`` assembles them, and decides there what only rank 0 does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from runners.core.record import EpochMetrics, RunRecord, best_metrics
from runners.engine.checkpoint import save_checkpoint
from runners.engine.divergence import DivergenceGuard
from runners.engine.trainer import EpochResult, Hook, Trainer

__all__ = [
    "CheckpointHook",
    "DivergenceHook",
    "EpochEndHook",
    "EvaluationHook",
    "ProgressHook",
    "RecordHook",
    "ScheduleHook",
    "TrackerHook",
]

#: Metrics shown on the progress line at the end of an epoch (all of them are recorded).
PROGRESS_METRICS = ("loss", "top1", "top5", "AP", "AP50")


class ScheduleHook(Hook):
    """Scheduled layers (DropBlock's ramp, CBN's burn-in and CmBN's reset) learn each step."""

    def __init__(self, model: nn.Module, total_steps: int) -> None:
        self.modules = [
            m for m in model.modules() if callable(getattr(m, "set_schedule_step", None))
        ]
        self.total_steps = total_steps

    def before_step(self, trainer: Trainer, step: int) -> None:
        for module in self.modules:
            module.set_schedule_step(step, self.total_steps)


class EvaluationHook(Hook):
    """Scores the model every ``every`` epochs and after the last, into the epoch's metrics.

    ``evaluate(model, final)`` returns the task's validation metrics.
    """

    def __init__(
        self, evaluate: Callable[[nn.Module, bool], dict[str, float]], every: int, epochs: int
    ) -> None:
        self.evaluate, self.every, self.epochs = evaluate, every, epochs

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        if result.epoch % self.every == 0 or result.epoch == self.epochs:
            result.metrics.update(self.evaluate(trainer.model, result.epoch == self.epochs))


class RecordHook(Hook):
    """The run record earns each epoch: its metrics, final and best, throughput, peak memory."""

    def __init__(self, record: RunRecord, peak_memory_mb: Callable[[], float]) -> None:
        self.record, self.peak_memory_mb = record, peak_memory_mb

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        record = self.record
        images_per_s = result.images / result.seconds if result.seconds > 0 else float("nan")
        record.epochs.append(
            EpochMetrics(
                epoch=result.epoch,
                train_loss=result.train_loss,
                lr=result.lr,
                epoch_time_s=result.seconds,
                images_per_s=images_per_s,
                metrics=dict(result.metrics),
            )
        )
        if result.metrics:
            record.final = dict(result.metrics)
            record.best = best_metrics(record.epochs)
        record.throughput = trainer.throughput
        record.peak_memory_mb = self.peak_memory_mb()


class _Progress(Protocol):
    def update(self, n: int = 1) -> None: ...
    def close(self, summary: dict[str, Any]) -> None: ...


class ProgressHook(Hook):
    """A progress bar over each epoch's steps, closed with the epoch's line of results."""

    def __init__(self, make: Callable[[int, str], _Progress], epochs: int) -> None:
        self.make, self.epochs = make, epochs
        self._bar: _Progress | None = None

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        self._bar = self.make(trainer.steps_per_epoch, f"epoch {epoch}/{self.epochs}")

    def after_step(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.update()

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        shown = {k: f"{v:.4f}" for k, v in result.metrics.items() if k in PROGRESS_METRICS}
        if self._bar is not None:
            self._bar.close({"train_loss": f"{result.train_loss:.4f}"} | shown)


class TrackerHook(Hook):
    """Logs each epoch's numbers to the tracker (W&B, or nothing)."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        numbers = {"train_loss": result.train_loss, "lr": result.lr, "epoch": result.epoch}
        self.tracker.log(numbers | result.metrics, step=result.epoch)


class CheckpointHook(Hook):
    """``checkpoint.pt`` at every epoch's end and, with ``every_steps``, every N steps within.

    Every loss seen so far passes the divergence check before a checkpoint is written (the
    guard is flushed first, and raises if one failed), so no checkpoint holds weights from after
    a diverged step; the guard's reference goes into the checkpoint.
    """

    def __init__(
        self,
        job_dir: str | os.PathLike[str],
        record: RunRecord,
        guard: DivergenceGuard | None,
        every_steps: int = 0,
    ) -> None:
        self.job_dir, self.record, self.guard = Path(job_dir), record, guard
        self.every_steps = every_steps

    def save(self, trainer: Trainer) -> None:
        guard_state = None
        if self.guard is not None:
            self.guard.flush()  # raises DivergedError: nothing is saved for a diverged step
            guard_state = self.guard.state_dict()
        save_checkpoint(
            self.job_dir,
            model=trainer.model,
            optimizer=trainer.optimizer,
            position=trainer.position(),
            record=self.record,
            divergence=guard_state,
        )

    def after_step(self, trainer: Trainer) -> None:
        in_epoch = trainer.step_in_epoch
        if self.every_steps and in_epoch and in_epoch % self.every_steps == 0:
            self.save(trainer)

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        self.save(trainer)


class DivergenceHook(Hook):
    """Checks the epoch's last losses at its end (the guard sees every loss as it is made)."""

    def __init__(self, guard: DivergenceGuard) -> None:
        self.guard = guard

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        self.guard.flush()


class EpochEndHook(Hook):
    """Calls ``callback(record)`` once the epoch is recorded and saved (the job writes
    ``run.json`` and reports to its Optuna trial)."""

    def __init__(self, record: RunRecord, callbacks: Sequence[Callable[[RunRecord], None]]) -> None:
        self.record, self.callbacks = record, list(callbacks)

    def after_epoch(self, trainer: Trainer, result: EpochResult) -> None:
        for callback in self.callbacks:
            callback(self.record)
