"""Schedules for a regularizer's strength over training.

- ``linear`` (the DropBlock paper, Sec. 3: "linearly decreasing keep_prob"; the official TF code
  ramps over *all* training steps, ``resnet_main.py``): p(t) = p * min(1, t / T).
- ``darknet`` (AlexeyAB/darknet ``dropout_layer_kernels.cu``): multiplier
  m = min(1, t / (0.85 * T)) scales both the probability and the block size.
- ``none``: constant p.

The position ``t`` is set by the runner once per optimizer step through :func:`set_schedule_step`;
layers keep it in a buffer, so it is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

from torch import nn

__all__ = ["SCHEDULES", "ramp_factor", "set_schedule_step"]

SCHEDULES = ("linear", "darknet", "none")
#: Darknet ramps to the full rate at 85% of max_batches.
DARKNET_RAMP_FRACTION = 0.85


def ramp_factor(schedule: str, step: int, total_steps: int) -> float:
    """The multiplier in [0, 1] at ``step`` of ``total_steps``; 1 when no total is known."""
    if schedule == "none" or total_steps <= 0:
        return 1.0
    if schedule == "linear":
        return min(1.0, max(0.0, step / total_steps))
    if schedule == "darknet":
        return min(1.0, max(0.0, step / (DARKNET_RAMP_FRACTION * total_steps)))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def set_schedule_step(model: nn.Module, step: int, total_steps: int) -> int:
    """Tell every scheduled layer of ``model`` where training is; returns how many were told."""
    told = 0
    for module in model.modules():
        setter = getattr(module, "set_schedule_step", None)
        if callable(setter) and module is not model:
            setter(step, total_steps)
            told += 1
    return told
