"""What a task hands the training loop: data, model, the loss of a chunk, and its evaluation.

``fit`` (``runners.training``, ``runners.engine.trainer``) is the same loop for every task; a task (``runners.tasks.classify``,
``runners.tasks.detect``) says how a batch becomes a loss and how the model is scored. Adding a task
means a schema of its keys (``runners.config.schema.TASK_SCHEMAS``), their rules
(``runners.config.rules.TASKS``) and one builder that returns :class:`TaskParts`, called by
:func:`build_task`. A builder reads only its own task's keys: the composed ``cfg.task`` has no
others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["EvalContext", "TaskData", "TaskParts", "build_task"]


class TaskData(Protocol):
    """A task's data, as its loader builder returns it (``runners.data``)."""

    train: DataLoader
    val: DataLoader
    #: uint8 batch on the device -> the network's float input.
    normalize: Callable[[torch.Tensor], torch.Tensor]
    #: Class names in the model's label order.
    classes: list[str]


@dataclass
class EvalContext:
    """How evaluation runs: where, in which precision and layout, and whether it is the last."""

    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]
    channels_last: bool
    #: The last evaluation of the run: a detection task writes its detections file then.
    final: bool
    job_dir: Path | None


@dataclass
class TaskParts:
    #: This process's shards of the task's data (``train``, ``val``, ``normalize``).
    data: TaskData
    model: nn.Module
    #: Where the regularizer was placed (``kind:path``).
    placements: list[str]
    #: ``loss(model, images, targets)`` of one chunk (a mini-batch), already reduced to a mean.
    loss: Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]
    #: ``evaluate(model, context)`` -> the validation metrics recorded for the epoch.
    evaluate: Callable[[nn.Module, EvalContext], dict[str, float]]
    #: ``move_targets(targets, device)``.
    move_targets: Callable[[Any, torch.device], Any]
    #: Evaluate after every ``eval_every`` epochs (and always after the last).
    eval_every: int = 1

    @property
    def train(self) -> DataLoader:
        return self.data.train

    @property
    def val(self) -> DataLoader:
        return self.data.val

    @property
    def normalize(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.data.normalize


def build_task(cfg: Any, device: torch.device) -> TaskParts:
    """The parts of ``cfg.task.name``'s task (model on the CPU; the loop moves it)."""
    if cfg.task.name == "detect":
        from runners.tasks.detect import build_detection

        return build_detection(cfg, device)
    if cfg.task.name == "classify":
        from runners.tasks.classify import build_classification

        return build_classification(cfg, device)
    raise ValueError(f"no builder for task {cfg.task.name!r}")
