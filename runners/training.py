"""A job's training, assembled from its config: task, model, optimizer, hooks, Trainer.

This is the one place that reads the config for training and decides, once, which hooks run on
which process (rank 0 alone writes checkpoints and logs); the loop itself
(``runners.engine.trainer``) takes explicit arguments. What differs between tasks (data, the
loss of a batch, evaluation) comes from ``runners.tasks.registry``.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import measure_complexity
from runners.core.record import RunRecord
from runners.data.sampler import EpochShuffleSampler
from runners.dist import distributed
from runners.engine.checkpoint import restore_checkpoint
from runners.engine.divergence import DivergenceGuard
from runners.engine.hooks import (
    CheckpointHook,
    DivergenceHook,
    EpochEndHook,
    EvaluationHook,
    ProgressHook,
    RecordHook,
    ScheduleHook,
    TrackerHook,
)
from runners.engine.optim import build_optimizer, lr_at, scaled_lr
from runners.engine.trainer import Hook, StepSettings, Trainer
from runners.tasks.registry import EvalContext, TaskParts, build_task
from runners.tracking.environment import peak_memory_mb
from runners.tracking.progress import EpochProgress
from runners.tracking.trackers import Tracker

__all__ = ["fit", "seed_everything"]

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not deterministic


def _autocast(
    device: torch.device, enabled: bool
) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA when enabled; nothing elsewhere."""
    if enabled and device.type == "cuda":
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


class _EpochOrder(Hook):
    """Each epoch's data order: a function of the seed and the epoch, resumable midway."""

    def __init__(self, loader: Any, batch: int) -> None:
        self.loader, self.batch = loader, batch

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        sampler = getattr(self.loader, "sampler", None)
        if isinstance(sampler, EpochShuffleSampler):
            sampler.set_epoch(epoch, start=trainer.step_in_epoch * self.batch)
        distributed.set_epoch(self.loader, epoch)


def _evaluator(cfg: Any, task: TaskParts, record: RunRecord, device: torch.device) -> Callable:
    channels_last = bool(cfg.channels_last and device.type == "cuda")
    job_dir = Path(record.job_dir) if record.job_dir and distributed.is_main() else None

    def evaluate(model: torch.nn.Module, final: bool) -> dict[str, float]:
        context = EvalContext(
            device=device,
            autocast=_autocast(device, cfg.amp),
            channels_last=channels_last,
            final=final,
            job_dir=job_dir,
        )
        distributed.average_bn_statistics(model)
        return task.evaluate(model, context)

    return evaluate


def _hooks(
    cfg: Any,
    task: TaskParts,
    record: RunRecord,
    context: tuple[Any, torch.device, DivergenceGuard | None, Callable[[RunRecord], None]],
    model: torch.nn.Module,
    total_steps: int,
) -> list[Hook]:
    """The job's hooks in the order they run after an epoch; rank 0's decided here, once."""
    tracker, device, divergence, on_epoch_end = context
    hooks: list[Hook] = [_EpochOrder(task.train, cfg.batch), ScheduleHook(model, total_steps)]
    hooks += [
        EvaluationHook(_evaluator(cfg, task, record, device), task.eval_every, cfg.epochs),
        RecordHook(record, lambda: peak_memory_mb(device)),
        ProgressHook(lambda total, desc: EpochProgress(total, desc=desc), cfg.epochs),
        TrackerHook(tracker),
    ]
    if divergence is not None:
        hooks.append(DivergenceHook(divergence))
    if record.job_dir and cfg.checkpoint.enabled and distributed.is_main():
        # Under torchrun rank 0 alone writes, at epoch ends only: DistributedSampler cannot
        # start an epoch midway (docs/DISTRIBUTED.md).
        every = 0 if distributed.current_world().size > 1 else cfg.checkpoint.every_steps
        hooks.append(CheckpointHook(record.job_dir, record, divergence, every))
    hooks.append(EpochEndHook(record, [on_epoch_end]))
    return hooks


def fit(
    cfg: Any,
    record: RunRecord,
    tracker: Tracker,
    device: torch.device,
    on_epoch_end: Callable[[RunRecord], None] = lambda _record: None,
    divergence: DivergenceGuard | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> RunRecord:
    """Train ``cfg.epochs`` epochs, evaluating every ``task.eval_every`` and after the last;
    fills ``record`` as it goes. ``divergence`` sees every training loss and stops the job when
    it diverges; every loss is checked before a checkpoint is written. ``checkpoint`` is a
    payload from :func:`runners.engine.checkpoint.load_checkpoint` to continue from (the caller
    decides whether to resume: ``runners.rerun``).
    """
    seed_everything(cfg.seed, cfg.deterministic)
    task = build_task(cfg, device)
    model = distributed.convert_sync_batchnorm(task.model, cfg.ddp.sync_bn)
    record.placements = task.placements
    complexity = measure_complexity(model, cfg.data.image_size)
    record.params, record.flops = complexity.params, complexity.flops
    channels_last = bool(cfg.channels_last and device.type == "cuda")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout)
    # DDP (torchrun) trains through the wrapper; `model` stays the plain module everywhere else.
    find_unused = distributed.find_unused_parameters(cfg.ddp.find_unused_parameters, cfg.task.name)
    train_model = distributed.wrap_model(model, device, find_unused)
    distributed.seed_rank(cfg.seed)
    peak_lr = scaled_lr(cfg.optim.base_lr, cfg.batch)
    optimizer = build_optimizer(
        model, peak_lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov
    )
    total_steps = len(task.train) * cfg.epochs
    warmup_steps = round(cfg.optim.warmup_epochs * len(task.train))
    start = _resume(checkpoint, model, optimizer, record, divergence)
    settings = StepSettings(
        subdivisions=cfg.subdivisions,
        lr_for_step=lambda s: lr_at(s, total_steps, warmup_steps, peak_lr),
        autocast=_autocast(device, cfg.amp),
        channels_last=channels_last,
        normalize=task.normalize,
        move_targets=task.move_targets,
    )
    context = (tracker, device, divergence, on_epoch_end)
    trainer = Trainer(
        model,
        optimizer,
        task.train,
        task.loss if divergence is None else divergence.watch(task.loss),
        settings,
        device=device,
        hooks=_hooks(cfg, task, record, context, model, total_steps),
        train_model=train_model,
        start=start,
    )
    trainer.train(cfg.epochs)
    return record


def _resume(
    checkpoint: dict[str, Any] | None,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    record: RunRecord,
    divergence: DivergenceGuard | None,
) -> Any:
    """The loop position to start from: a checkpoint's (model, optimizer, RNG, record and the
    guard restored), or the beginning."""
    if checkpoint is None:
        return None
    position = restore_checkpoint(checkpoint, model=model, optimizer=optimizer, record=record)
    if divergence is not None:
        divergence.load_state_dict(checkpoint["divergence"])
    record.resumed_from = {"epoch": position.epoch, "step": position.step}
    log.info("resuming from %s at epoch %d, step %d", record.job_dir, position.epoch, position.step)
    if distributed.current_world().size > 1 and position.step_in_epoch:
        raise RuntimeError(
            f"{record.job_dir}: the checkpoint is from the middle of an epoch, which a torchrun "
            "job cannot resume; rerun without torchrun or delete checkpoint.pt"
        )
    return position
