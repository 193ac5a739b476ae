"""Checkpoints that let a killed job continue as if it had never stopped.

``checkpoint.pt`` in the job directory holds everything the rest of the run depends on: model
(DropBlock's schedule position and CBN's history are buffers, so they are in its state dict),
optimizer, the loop's position (epoch, global step, step within the epoch, the epoch's running
loss sum), the RNG states of Python, NumPy and torch (CPU and every CUDA device), and the part of
the run record already earned (per-epoch metrics, final, best). The learning rate is a function
of the global step, so there is no scheduler state; bf16 autocast needs no grad scaler.

Writes are atomic (temporary file, fsync, ``os.replace``): a kill during a write leaves the
previous checkpoint. ``checkpoint.json`` beside it says what the checkpoint holds, for people and
tests, without loading tensors. A checkpoint of a different config (hash) is never resumed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runners.record import EpochMetrics, RunRecord

__all__ = [
    "CHECKPOINT_NAME",
    "LoopPosition",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_INFO = "checkpoint.json"
CHECKPOINT_VERSION = 1


@dataclass
class LoopPosition:
    """Where the loop stands: ``epoch`` is the epoch to run (or continue) next, 1-based."""

    epoch: int = 1
    #: Optimizer steps taken in the whole run.
    step: int = 0
    #: Steps of ``epoch`` already taken (0 at an epoch boundary).
    step_in_epoch: int = 0
    #: Sum of ``loss * samples`` and samples seen so far in ``epoch`` (its mean train loss).
    epoch_loss_sum: float = 0.0
    epoch_seen: int = 0
    #: Training images and seconds over the run (throughput).
    train_images: int = 0
    train_time: float = 0.0


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    job_dir: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    position: LoopPosition,
    record: RunRecord,
) -> Path:
    """Write ``checkpoint.pt`` (atomically) and ``checkpoint.json``; returns the checkpoint path."""
    directory = Path(job_dir)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": CHECKPOINT_VERSION,
        "config_hash": record.config_hash,
        "position": asdict(position),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(),
        "record": {
            "epochs": [asdict(e) for e in record.epochs],
            "final": dict(record.final),
            "best": dict(record.best),
        },
    }
    target = directory / CHECKPOINT_NAME
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    info = {"config_hash": record.config_hash, **asdict(position)}
    info_tmp = directory / f".{CHECKPOINT_INFO}.tmp"
    info_tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(info_tmp, directory / CHECKPOINT_INFO)
    return target


def load_checkpoint(job_dir: str | os.PathLike[str], config_hash: str) -> dict[str, Any] | None:
    """The job directory's checkpoint if there is one for this config, else ``None``.

    A checkpoint of another config is left where it is (and logged), never resumed; an unreadable
    one raises with its path, since silently starting over would hide lost work.
    """
    path = Path(job_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from err
    if payload.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(
            f"{path}: checkpoint version {payload.get('version')!r} is not supported"
        )
    if payload.get("config_hash") != config_hash:
        log.warning(
            "%s belongs to config %s, not %s: starting from scratch",
            path,
            payload.get("config_hash"),
            config_hash,
        )
        return None
    return payload


def restore_checkpoint(
    payload: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    record: RunRecord,
) -> LoopPosition:
    """Load model, optimizer, RNG and the record's earned metrics; returns the loop position."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    saved = payload["record"]
    record.epochs = [EpochMetrics(**e) for e in saved["epochs"]]
    record.final, record.best = dict(saved["final"]), dict(saved["best"])
    _restore_rng(payload["rng"])
    return LoopPosition(**payload["position"])
