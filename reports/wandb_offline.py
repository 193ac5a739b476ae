"""Read an offline W&B run (``wandb/offline-run-*/run-<id>.wandb``) without the W&B service.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
32 KiB blocks of LevelDB-log-style chunks (crc32 uint32, length uint16, type uint8: full, first,
middle, last), each payload a ``wandb_internal_pb2.Record`` protobuf. This is the data that
``wandb sync`` uploads; reading it lets tests and reports check what an offline run logged.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

__all__ = ["OfflineRun", "find_offline_runs", "read_offline_run"]

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run recorded: its identity, config, history rows and final summary."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    #: The git commit W&B recorded, and the run's start time (ISO 8601 UTC); "" if absent.
    commit: str = ""
    started_at: str = ""


def _payloads(path: Path):
    data = path.read_bytes()
    ident, magic, version = _HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(
            f"{path}: not a W&B transaction log (header {ident!r}, {magic:#x}, {version})"
        )
    offset, pending = _HEADER.size, b""
    while offset + _CHUNK.size <= len(data):
        left_in_block = _BLOCK - (offset % _BLOCK)
        if left_in_block < _CHUNK.size:
            offset += left_in_block  # block trailer padding
            continue
        _crc, length, kind = _CHUNK.unpack_from(data, offset)
        offset += _CHUNK.size
        if kind == 0 and length == 0:  # zero padding at the end of a block
            offset += left_in_block - _CHUNK.size
            continue
        chunk = data[offset : offset + length]
        offset += length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        else:
            raise ValueError(f"{path}: bad chunk type {kind} at byte {offset}")


def _value(item: Any) -> Any:
    return json.loads(item.value_json)


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_offline_run(path: str | os.PathLike[str]) -> OfflineRun:
    """Parse a ``run-<id>.wandb`` file (or the offline run directory holding one)."""
    from wandb.proto import wandb_internal_pb2 as pb

    target = Path(path)
    if target.is_dir():
        logs = sorted(target.glob("run-*.wandb"))
        if not logs:
            raise FileNotFoundError(f"{target}: no run-*.wandb file")
        target = logs[0]
    run = OfflineRun(path=target)
    for payload in _payloads(target):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = (
                record.run.run_id,
                record.run.display_name,
                record.run.run_group,
            )
            run.tags = list(record.run.tags)
            run.commit = record.run.git.commit
            if record.run.HasField("start_time"):
                run.started_at = record.run.start_time.ToDatetime(tzinfo=timezone.utc).isoformat(
                    timespec="seconds"
                )
            for item in record.run.config.update:
                run.config[item.key] = _value(item)
        elif kind == "config":
            for item in record.config.update:
                run.config[item.key] = _value(item)
        elif kind == "history":
            row = {_key(item): _value(item) for item in record.history.item}
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = _value(item)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def find_offline_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Every offline run directory under ``root``."""
    return sorted(p for p in Path(root).rglob("offline-run-*") if p.is_dir())
