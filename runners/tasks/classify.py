"""Image classification: cross-entropy training, validation loss and top-k accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from runners.data.loaders import build_data
from runners.dist import distributed
from runners.tasks.metrics import topk_correct
from runners.tasks.registry import EvalContext, TaskParts

__all__ = ["build_classification", "evaluate_classifier", "evaluate_with_train"]


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    context: EvalContext,
    *,
    topk: tuple[int, ...],
    normalize: Any = None,
) -> dict[str, float]:
    """Validation loss and top-k accuracies in percent: ``{"loss", "top1", "top5", ...}``.

    Under DDP each process scores its shard of ``loader`` and the sums are all-reduced, so every
    process returns the numbers of the whole validation set.
    """
    model.eval()
    device = context.device
    criterion = nn.CrossEntropyLoss()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros(len(topk), dtype=torch.int64, device=device)
    seen = 0
    memory_format = torch.channels_last if context.channels_last else torch.contiguous_format
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        if normalize is not None:
            images = normalize(images)
        images = images.contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        with context.autocast():
            logits = model(images)
        loss_sum += criterion(logits.float(), targets) * images.shape[0]
        correct += topk_correct(logits, targets, topk)
        seen += images.shape[0]
    count = torch.tensor(seen, dtype=torch.int64, device=device)
    loss_sum, correct, count = distributed.all_reduce_sum(loss_sum, correct, count)
    seen = int(count.item())
    results = {"loss": (loss_sum / max(seen, 1)).item()}
    for k, hits in zip(topk, correct.tolist(), strict=True):
        results[f"top{k}"] = 100.0 * hits / max(seen, 1)
    return results


def evaluate_with_train(
    model: nn.Module, data: Any, context: EvalContext, topk: tuple[int, ...]
) -> dict[str, float]:
    """The validation metrics and, when ``data.train_eval`` is set, the same metrics on those
    training images as ``train_eval_<name>``: the generalization gap is train minus val."""
    results = evaluate_classifier(model, data.val, context, topk=topk, normalize=data.normalize)
    if data.train_eval is not None:
        train = evaluate_classifier(
            model, data.train_eval, context, topk=topk, normalize=data.normalize
        )
        results |= {f"train_eval_{name}": value for name, value in train.items()}
    return results


def build_classification(cfg: Any, device: torch.device) -> TaskParts:
    """The classifier (backbone + regularizer) on the ImageFolder data of ``cfg.data``."""
    from runners.config.network import build_model

    data = build_data(
        cfg.data,
        cfg.batch,
        cfg.seed,
        pin_memory=device.type == "cuda",
        train_eval_samples=cfg.task.train_eval_samples,
    )
    data = distributed.shard_loaders(data, cfg.seed)  # this process's shards under torchrun
    model, placements = build_model(cfg, num_classes=len(data.classes))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.task.label_smoothing)
    topk = tuple(cfg.task.topk)

    def loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return criterion(model(images), targets)

    return TaskParts(
        data=data,
        model=model,
        placements=placements,
        loss=loss,
        evaluate=lambda model, context: evaluate_with_train(model, data, context, topk),
        move_targets=lambda targets, device: targets.to(device, non_blocking=True),
        eval_every=cfg.task.eval_every,
    )
