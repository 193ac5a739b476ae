"""One classification job in small steps: seed, data, model, one step, one epoch, evaluate, fit.

Gradient accumulation follows Darknet's ``subdivisions``: an optimizer step sees ``batch``
samples in ``subdivisions`` forwards of ``mini_batch = batch / subdivisions`` each. Each forward's
loss is weighted by its share of the step's samples, so the summed gradient equals that of one
forward over the whole batch, except through BatchNorm, which only sees its mini-batch (the
effect the seed's thread argues about).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from layers import apply_regularizer
from models import create_backbone, measure_complexity
from runners.data import build_data
from runners.divergence import DivergenceGuard
from runners.environment import peak_memory_mb
from runners.metrics import topk_correct
from runners.optim import build_optimizer, lr_at, scaled_lr
from runners.progress import EpochProgress
from runners.record import EpochMetrics, RunRecord
from runners.tracking import Tracker

__all__ = ["build_model", "evaluate", "fit", "seed_everything", "train_one_epoch", "train_step"]


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
    placements = apply_regularizer(
        model, cfg.backbone.name, reg.name, reg.groups, options, input_size=cfg.data.image_size
    )
    return model, placements


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    subdivisions: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """One optimizer step over ``images`` in ``subdivisions`` forwards; returns the mean loss
    (detached, not synchronised)."""
    optimizer.zero_grad(set_to_none=True)
    total = images.shape[0]
    loss_sum = torch.zeros((), device=images.device)
    for chunk_images, chunk_targets in zip(
        images.tensor_split(subdivisions), targets.tensor_split(subdivisions), strict=True
    ):
        if chunk_images.shape[0] == 0:
            continue
        with autocast():
            loss = criterion(model(chunk_images), chunk_targets)
        weighted = loss * (chunk_images.shape[0] / total)
        weighted.backward()
        loss_sum += weighted.detach().float()
    optimizer.step()
    return loss_sum


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
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
) -> tuple[float, int, int]:
    """Train one pass over ``loader``; returns (mean train loss, images seen, next step).

    ``normalize`` turns each uint8 batch into the network's float input once it is on ``device``.
    """
    model.train()
    loss_sum = torch.zeros((), device=device)
    seen = 0
    step = first_step
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        if normalize is not None:
            images = normalize(images)
        images = images.contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        lr = lr_for_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if before_step is not None:
            before_step(step)
        loss = train_step(model, images, targets, optimizer, criterion, subdivisions, autocast)
        loss_sum += loss * images.shape[0]
        seen += images.shape[0]
        step += 1
        if progress is not None:
            progress.update()
    return (loss_sum / max(seen, 1)).item(), seen, step


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    criterion: nn.Module,
    *,
    device: torch.device,
    topk: tuple[int, ...],
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    channels_last: bool = False,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Validation loss and top-k accuracies in percent: ``{"loss", "top1", "top5", ...}``."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros(len(topk), dtype=torch.int64, device=device)
    seen = 0
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        if normalize is not None:
            images = normalize(images)
        images = images.contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        with autocast():
            logits = model(images)
        loss_sum += criterion(logits.float(), targets) * images.shape[0]
        correct += topk_correct(logits, targets, topk)
        seen += images.shape[0]
    results = {"loss": (loss_sum / max(seen, 1)).item()}
    for k, hits in zip(topk, correct.tolist(), strict=True):
        results[f"top{k}"] = 100.0 * hits / max(seen, 1)
    return results


def fit(
    cfg: Any,
    record: RunRecord,
    tracker: Tracker,
    device: torch.device,
    on_epoch_end: Callable[[RunRecord], None] = lambda _record: None,
    divergence: DivergenceGuard | None = None,
) -> RunRecord:
    """Train ``cfg.epochs`` epochs, evaluating after each; fills ``record`` as it goes.

    ``divergence`` sees every training loss and stops the job when it diverges.
    """
    seed_everything(cfg.seed, cfg.deterministic)
    data = build_data(cfg.data, cfg.batch, cfg.seed, pin_memory=device.type == "cuda")
    model, record.placements = build_model(cfg, num_classes=len(data.classes))
    complexity = measure_complexity(model, cfg.data.image_size)
    record.params, record.flops = complexity.params, complexity.flops
    channels_last = bool(cfg.channels_last and device.type == "cuda")
    model = model.to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )

    peak_lr = scaled_lr(cfg.optim.base_lr, cfg.batch)
    optimizer = build_optimizer(
        model, peak_lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov
    )
    steps_per_epoch = len(data.train)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.task.label_smoothing)
    if divergence is not None:
        criterion = divergence.watch(criterion)
    eval_criterion = nn.CrossEntropyLoss()
    topk = tuple(cfg.task.topk)
    autocast = lambda: _autocast(device, cfg.amp)  # noqa: E731
    # Scheduled layers (DropBlock, CBN burn-in and CmBN reset) learn the step once per optimizer step.
    scheduled = [m for m in model.modules() if callable(getattr(m, "set_schedule_step", None))]

    def before_step(step: int) -> None:
        for module in scheduled:
            module.set_schedule_step(step, total_steps)

    step = 0
    train_images, train_time = 0, 0.0
    for epoch in range(1, cfg.epochs + 1):
        progress = EpochProgress(steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}")
        start = time.perf_counter()
        train_loss, seen, step = train_one_epoch(
            model,
            data.train,
            optimizer,
            criterion,
            device=device,
            subdivisions=cfg.subdivisions,
            lr_for_step=lambda s: lr_at(s, total_steps, warmup_steps, peak_lr),
            first_step=step,
            autocast=autocast,
            channels_last=channels_last,
            progress=progress,
            before_step=before_step if scheduled else None,
            normalize=data.normalize,
        )
        epoch_time = time.perf_counter() - start
        train_images += seen
        train_time += epoch_time
        scores = evaluate(
            model,
            data.val,
            eval_criterion,
            device=device,
            topk=topk,
            autocast=autocast,
            channels_last=channels_last,
            normalize=data.normalize,
        )
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            loss=scores["loss"],
            top1=scores.get("top1", float("nan")),
            top5=scores.get("top5", float("nan")),
            lr=optimizer.param_groups[0]["lr"],
            epoch_time_s=epoch_time,
            images_per_s=seen / epoch_time if epoch_time > 0 else float("nan"),
        )
        record.epochs.append(metrics)
        progress.close(
            {
                "train_loss": f"{train_loss:.4f}",
                "val_loss": f"{metrics.loss:.4f}",
                "top1": f"{metrics.top1:.2f}",
                "top5": f"{metrics.top5:.2f}",
            }
        )
        tracker.log(
            {
                "train_loss": train_loss,
                "loss": metrics.loss,
                "top1": metrics.top1,
                "top5": metrics.top5,
                "lr": metrics.lr,
                "epoch": epoch,
            },
            step=epoch,
        )
        record.final = {"top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss}
        record.best = {
            "top1": max(e.top1 for e in record.epochs),
            "top5": max(e.top5 for e in record.epochs),
            "loss": min(e.loss for e in record.epochs),
        }
        record.throughput = train_images / train_time if train_time > 0 else None
        record.peak_memory_mb = peak_memory_mb(device)
        on_epoch_end(record)
    return record
