"""One training job in small steps: seed, model, one step, one epoch, fit; the same for every task.

What differs between tasks (data, the loss of a batch, evaluation) comes from ``runners.tasks.registry``.

Gradient accumulation follows Darknet's ``subdivisions``: an optimizer step sees ``batch``
samples in ``subdivisions`` forwards of ``mini_batch = batch / subdivisions`` each. Each forward's
loss is weighted by its share of the step's samples, so the summed gradient equals that of one
forward over the whole batch, except through BatchNorm, which only sees its mini-batch (the
effect the seed's thread argues about).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from layers import apply_regularizer
from models import create_backbone, group_modules, group_paths, measure_complexity
from runners.core.record import EpochMetrics, RunRecord, best_metrics
from runners.data.sampler import EpochShuffleSampler
from runners.dist import distributed
from runners.engine.checkpoint import LoopPosition, restore_checkpoint, save_checkpoint
from runners.engine.divergence import DivergenceGuard
from runners.engine.optim import build_optimizer, lr_at, scaled_lr
from runners.tasks.registry import EvalContext, build_task
from runners.tracking.environment import peak_memory_mb
from runners.tracking.progress import EpochProgress
from runners.tracking.trackers import Tracker

__all__ = [
    "build_model",
    "chunk_bounds",
    "classification_loss",
    "fit",
    "seed_everything",
    "train_one_epoch",
    "train_step",
]


log = logging.getLogger(__name__)

#: Metrics shown on the progress line at the end of an epoch (all of them are recorded).
_PROGRESS_METRICS = ("loss", "top1", "top5", "AP", "AP50")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not deterministic


def build_model(cfg: Any, num_classes: int) -> tuple[nn.Module, list[str]]:
    """The backbone with the regularizer placed in its groups; returns it and the placements."""
    model = create_backbone(cfg.backbone.name, num_classes=num_classes, **dict(cfg.backbone.kwargs))
    reg = cfg.regularizer
    keys = ("scope", "rescale", "gamma", "schedule", "kernel", "window", "burnin", "cbn_mode")
    options = {k: reg.get(k) for k in keys if reg.get(k) is not None}
    name = cfg.backbone.name
    groups, paths = group_modules(model, name), group_paths(model, name)
    placements = apply_regularizer(
        model, groups, paths, reg.name, reg.groups, options, input_size=cfg.data.image_size
    )
    return model, placements


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    loss_fn: Callable[[nn.Module, torch.Tensor, Any], torch.Tensor],
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


def classification_loss(criterion: nn.Module) -> Callable[[nn.Module, torch.Tensor, Any], Any]:
    """``criterion(model(images), targets)`` as a :func:`train_step` loss."""
    return lambda model, images, targets: criterion(model(images), targets)


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[nn.Module, torch.Tensor, Any], torch.Tensor],
    *,
    device: torch.device,
    subdivisions: int,
    lr_for_step: Callable[[int], float],
    first_step: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    channels_last: bool = False,
    progress: EpochProgress | None = None,
    before_step: Callable[[int], None] | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    move_targets: Callable[[Any, torch.device], Any] | None = None,
    after_step: Callable[[int, torch.Tensor, int], None] | None = None,
    loss_sum_start: float = 0.0,
    seen_start: int = 0,
) -> tuple[float, int, int]:
    """Train one pass over ``loader``; returns (mean train loss, images seen, next step), both
    over all processes under DDP.

    ``normalize`` turns each uint8 batch into the network's float input once it is on ``device``.
    ``after_step(next_step, loss_sum, seen)`` runs after every optimizer step (checkpoints); a
    resumed epoch passes the loss sum and sample count it had reached in ``*_start``.
    """
    model.train()
    loss_sum = torch.full((), loss_sum_start, device=device)
    seen = seen_start
    step = first_step
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        if normalize is not None:
            images = normalize(images)
        images = images.contiguous(memory_format=memory_format)
        targets = move_targets(targets, device) if move_targets else targets.to(device)
        lr = lr_for_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if before_step is not None:
            before_step(step)
        loss = train_step(model, images, targets, optimizer, loss_fn, subdivisions, autocast)
        loss_sum += loss * images.shape[0]
        seen += images.shape[0]
        step += 1
        if progress is not None:
            progress.update()
        if after_step is not None:
            after_step(step, loss_sum, seen)
    loss_sum, seen_all = distributed.all_reduce_sum(loss_sum, torch.tensor(seen, device=device))
    seen = int(seen_all.item())
    return (loss_sum / max(seen, 1)).item(), seen, step


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
    it diverges; every loss is checked before a checkpoint is written, so no checkpoint holds
    weights past a failed check. ``checkpoint`` is a payload from
    :func:`runners.engine.checkpoint.load_checkpoint` to continue from (the caller decides whether to
    resume: ``runners.rerun``).
    """
    seed_everything(cfg.seed, cfg.deterministic)
    task = build_task(cfg, device)
    model = distributed.convert_sync_batchnorm(task.model, cfg.ddp.sync_bn)
    record.placements = task.placements
    complexity = measure_complexity(model, cfg.data.image_size)
    record.params, record.flops = complexity.params, complexity.flops
    channels_last = bool(cfg.channels_last and device.type == "cuda")
    model = model.to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )

    # DDP (torchrun) trains through the wrapper; `model` stays the plain module everywhere else.
    train_model = distributed.wrap_model(model, device, distributed.find_unused_parameters(cfg))
    distributed.seed_rank(cfg.seed)

    peak_lr = scaled_lr(cfg.optim.base_lr, cfg.batch)
    optimizer = build_optimizer(
        model, peak_lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov
    )
    steps_per_epoch = len(task.train)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    loss_fn = task.loss if divergence is None else divergence.watch(task.loss)
    autocast = lambda: _autocast(device, cfg.amp)  # noqa: E731
    # Scheduled layers (DropBlock, CBN burn-in and CmBN reset) learn the step once per optimizer step.
    scheduled = [m for m in model.modules() if callable(getattr(m, "set_schedule_step", None))]

    def before_step(step: int) -> None:
        for module in scheduled:
            module.set_schedule_step(step, total_steps)

    job_dir = Path(record.job_dir) if record.job_dir else None
    checkpointing = job_dir is not None and cfg.checkpoint.enabled
    # Under torchrun every rank resumes from the same file and rank 0 alone writes it, at epoch
    # ends only: DistributedSampler cannot start an epoch midway (docs/DISTRIBUTED.md).
    writes_checkpoints = checkpointing and distributed.is_main()
    position = LoopPosition()
    if checkpoint is not None:
        position = restore_checkpoint(checkpoint, model=model, optimizer=optimizer, record=record)
        if divergence is not None:
            divergence.load_state_dict(checkpoint["divergence"])
        record.resumed_from = {"epoch": position.epoch, "step": position.step}
        log.info("resuming from %s at epoch %d, step %d", job_dir, position.epoch, position.step)

    def save(position: LoopPosition) -> None:
        """A checkpoint, once every loss so far has passed the divergence check."""
        guard_state = None
        if divergence is not None:
            divergence.flush()  # raises DivergedError: nothing is saved for a diverged step
            guard_state = divergence.state_dict()
        save_checkpoint(
            job_dir,
            model=model,
            optimizer=optimizer,
            position=position,
            record=record,
            divergence=guard_state,
        )

    every = cfg.checkpoint.every_steps if writes_checkpoints else 0
    if distributed.current_world().size > 1:
        every = 0
        if position.step_in_epoch:
            raise RuntimeError(
                f"{job_dir}: the checkpoint is from the middle of an epoch, which a torchrun job "
                "cannot resume; rerun without torchrun or delete checkpoint.pt"
            )
    sampler = getattr(task.train, "sampler", None)

    step = position.step
    train_images, train_time = position.train_images, position.train_time
    for epoch in range(position.epoch, cfg.epochs + 1):
        resumed = epoch == position.epoch and position.step_in_epoch > 0
        in_epoch = position.step_in_epoch if resumed else 0
        if isinstance(sampler, EpochShuffleSampler):
            sampler.set_epoch(epoch, start=in_epoch * cfg.batch)
        epoch_start_step = step - in_epoch
        already_seen = position.epoch_seen if resumed else 0
        progress = EpochProgress(steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}")
        distributed.set_epoch(task.train, epoch)
        start = time.perf_counter()

        def after_step(
            next_step: int,
            loss_sum: torch.Tensor,
            seen: int,
            epoch: int = epoch,
            first: int = epoch_start_step,
            before: tuple[int, float, int, float] = (train_images, train_time, already_seen, start),
        ) -> None:
            if every and (next_step - first) % every == 0:
                images, seconds, seen_before, started = before
                save(
                    LoopPosition(
                        epoch=epoch,
                        step=next_step,
                        step_in_epoch=next_step - first,
                        epoch_loss_sum=float(loss_sum),
                        epoch_seen=seen,
                        train_images=images + seen - seen_before,
                        train_time=seconds + time.perf_counter() - started,
                    )
                )

        train_loss, seen, step = train_one_epoch(
            train_model,
            task.train,
            optimizer,
            loss_fn,
            device=device,
            subdivisions=cfg.subdivisions,
            lr_for_step=lambda s: lr_at(s, total_steps, warmup_steps, peak_lr),
            first_step=step,
            autocast=autocast,
            channels_last=channels_last,
            progress=progress,
            before_step=before_step if scheduled else None,
            normalize=task.normalize,
            move_targets=task.move_targets,
            after_step=after_step if every else None,
            loss_sum_start=position.epoch_loss_sum if resumed else 0.0,
            seen_start=position.epoch_seen if resumed else 0,
        )
        epoch_time = time.perf_counter() - start
        # A resumed epoch counts the samples seen before the interruption; throughput uses them.
        train_images += seen - already_seen
        train_time += epoch_time
        scores: dict[str, float] = {}
        if epoch % task.eval_every == 0 or epoch == cfg.epochs:
            context = EvalContext(
                device=device,
                autocast=autocast,
                channels_last=channels_last,
                final=epoch == cfg.epochs,
                job_dir=Path(record.job_dir) if record.job_dir and distributed.is_main() else None,
            )
            distributed.average_bn_statistics(model)
            scores = task.evaluate(model, context)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            lr=optimizer.param_groups[0]["lr"],
            epoch_time_s=epoch_time,
            images_per_s=(seen - already_seen) / epoch_time if epoch_time > 0 else float("nan"),
            metrics=scores,
        )
        record.epochs.append(metrics)
        shown = {k: f"{v:.4f}" for k, v in scores.items() if k in _PROGRESS_METRICS}
        progress.close({"train_loss": f"{train_loss:.4f}"} | shown)
        tracker.log(
            {"train_loss": train_loss, "lr": metrics.lr, "epoch": epoch} | scores, step=epoch
        )
        if scores:
            record.final = dict(scores)
            record.best = best_metrics(record.epochs)
        record.throughput = train_images / train_time if train_time > 0 else None
        record.peak_memory_mb = peak_memory_mb(device)
        if divergence is not None:
            divergence.flush()  # the epoch's last losses, before anything is saved
        if writes_checkpoints:
            save(
                LoopPosition(
                    epoch=epoch + 1, step=step, train_images=train_images, train_time=train_time
                )
            )
        on_epoch_end(record)
    return record
