"""Checkpoints that let a killed job continue as if it had never stopped, and nothing else.

``checkpoint.pt`` in the job directory holds everything the rest of the run depends on: model
(DropBlock's schedule position and CBN's history are buffers, so they are in its state dict),
optimizer, the loop's position (epoch, global step, step within the epoch, the epoch's running
loss sum), the RNG states of Python, NumPy and torch (CPU and every CUDA device), the divergence
guard's reference loss, and the part of the run record already earned (per-epoch metrics,
final, best). The learning rate is a function of the global step, so there is no scheduler
state; bf16 autocast needs no grad scaler.

A checkpoint is untrusted data (job directories are shared and copied): it is read with
``torch.load(weights_only=True)``, which unpickles only tensors and plain containers and never
runs code, so every state is stored as tensors or plain types. A file that does not load that
way, or does not have the expected structure, is refused with :class:`CheckpointError` (one
line naming it). A checkpoint is resumed only by a job of the same config hash and the same code
version (``runners.rerun``); it is never written after a loss that failed the divergence check.

Writes go through ``runners.core.atomic_write``: a kill during a write leaves the previous
checkpoint. ``checkpoint.json`` beside it says what the checkpoint holds, for people and tests,
without loading tensors.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runners.core.atomic_write import atomic_write
from runners.core.errors import ConfigError
from runners.core.record import CodeVersion, EpochMetrics, RunRecord

__all__ = [
    "CHECKPOINT_INFO",
    "CHECKPOINT_NAME",
    "CheckpointError",
    "LoopPosition",
    "load_checkpoint",
    "remove_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_INFO = "checkpoint.json"
#: 2: loads with ``weights_only=True`` (RNG states as plain types), records the code version and
#: the divergence guard's state. Version 1 (pickled NumPy state) is refused, never unpickled.
CHECKPOINT_VERSION = 2


class CheckpointError(ConfigError):
    """A checkpoint cannot be used safely; the message names the file and what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: refused ({reason}); delete it, or start over with "
            "checkpoint.resume=false or force=true"
        )


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
    """RNG states as tensors and plain types (what ``weights_only=True`` loads)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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
    divergence: dict[str, Any] | None = None,
) -> Path:
    """Write ``checkpoint.pt`` and ``checkpoint.json`` atomically; returns the checkpoint path.

    ``divergence`` is the guard's :meth:`~runners.engine.divergence.DivergenceGuard.state_dict`: call
    this only after the guard has checked every loss so far.
    """
    directory = Path(job_dir)
    payload = {
        "version": CHECKPOINT_VERSION,
        "config_hash": record.config_hash,
        "code_version": asdict(record.code_version),
        "position": asdict(position),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(),
        "divergence": dict(divergence or {}),
        "record": {
            "epochs": [asdict(e) for e in record.epochs],
            "final": dict(record.final),
            "best": dict(record.best),
        },
    }
    target = atomic_write(directory / CHECKPOINT_NAME, lambda out: torch.save(payload, out))
    info = {"config_hash": record.config_hash, **asdict(position)}
    atomic_write(directory / CHECKPOINT_INFO, json.dumps(info, indent=2) + "\n")
    return target


def remove_checkpoint(job_dir: str | os.PathLike[str]) -> bool:
    """Delete the job's checkpoint and its sidecar (a fresh start); whether there was one."""
    found = False
    for name in (CHECKPOINT_NAME, CHECKPOINT_INFO):
        path = Path(job_dir) / name
        if path.exists():
            path.unlink()
            found = True
    return found


def _check_structure(path: Path, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"not a checkpoint: a {type(payload).__name__}")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            path,
            f"checkpoint version {payload.get('version')!r}, this code reads {CHECKPOINT_VERSION}",
        )
    expected = {
        "config_hash": str, "code_version": dict, "position": dict, "model": dict,
        "optimizer": dict, "rng": dict, "divergence": dict, "record": dict,
    }  # fmt: skip
    for key, kind in expected.items():
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(path, f"{key!r} is missing or not a {kind.__name__}")
    names = {f.name for f in fields(LoopPosition)}
    if set(payload["position"]) - names:
        raise CheckpointError(
            path, f"unknown loop position keys {sorted(set(payload['position']) - names)}"
        )
    return payload


def _why_unloadable(err: BaseException) -> str:
    """One line for why ``torch.load(weights_only=True)`` refused a file (torch's own message
    is a page, and advises ``weights_only=False``, which is exactly what must not be done)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if not ln.startswith(boilerplate)), "")[:160]
    if isinstance(err, pickle.UnpicklingError) and "GLOBAL" in str(err):
        return (
            "it holds objects other than tensors and plain data, which could run code when "
            f"loaded: {detail}"
        )
    return f"not a readable checkpoint: {type(err).__name__}: {detail}"


def load_checkpoint(
    job_dir: str | os.PathLike[str], config_hash: str, code: CodeVersion | None = None
) -> dict[str, Any] | None:
    """The job directory's checkpoint if there is one for this config and code, else ``None``.

    The file is loaded with ``weights_only=True`` (no code runs, whatever it holds). A
    checkpoint of another config or code is left where it is (and logged), never resumed; one
    that cannot be loaded that way, or is not a checkpoint of this version, raises
    :class:`CheckpointError`, since silently starting over would hide lost work.
    """
    path = Path(job_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever the bytes are, one line naming the file
        raise CheckpointError(path, _why_unloadable(err)) from None
    payload = _check_structure(path, payload)
    if payload["config_hash"] != config_hash:
        log.warning(
            "%s belongs to config %s, not %s: not resumed",
            path,
            payload["config_hash"],
            config_hash,
        )
        return None
    if code is not None:
        try:
            saved = CodeVersion(**payload["code_version"])
        except TypeError as err:
            raise CheckpointError(path, f"bad code_version ({err})") from None
        if not code.same_as(saved):
            log.warning(
                "%s was written by other code (%s; now %s): not resumed",
                path,
                saved.describe(),
                code.describe(),
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
