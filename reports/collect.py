"""Collect run records from directories into one pandas table (one row per run).

Records are read only through ``runners.core.record`` (the shared schema); nothing here trains.
A record is data from a job directory, which may be damaged or hostile: :func:`read_record`
checks every field a report uses, and :func:`load_records` can set unreadable ones aside (with
the reason) instead of failing the whole report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from runners.core.record import (
    COCO_METRICS,
    GAP_METRICS,
    RECORD_NAME,
    TRAIN_EVAL_PREFIX,
    RunRecord,
)

__all__ = [
    "DETECTION_METRICS",
    "GAP_METRICS",
    "collect_runs",
    "curves_table",
    "find_records",
    "generalization_gap",
    "load_records",
    "read_record",
    "record_row",
    "runs_table",
]

#: COCOeval's twelve bbox numbers, in its order (percent), as ``task=detect`` records them.
DETECTION_METRICS = COCO_METRICS

#: Columns of the runs table, in order.
COLUMNS = [
    "study", "status", "task", "data", "backbone", "regularizer", "batch", "subdivisions",
    "mini_batch", "epochs", "seed", "top1", "top5", "loss", "best_top1", "best_top5",
    "train_eval_top1", "train_eval_loss", *GAP_METRICS, *DETECTION_METRICS, "throughput", "params", "flops", "commit", "dirty", "edits", "config_hash", "error", "job_dir", "started_at",
]  # fmt: skip


def find_records(
    paths: Iterable[str | os.PathLike[str]], outside: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Every ``run.json`` under the given directories (recursively) or named directly, sorted.

    A ``run.json`` found in a directory that is a link to a file outside that directory is not
    a record of it: it is left out, and noted in ``outside`` as ``(path, reason)`` if given.
    """
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            root = None
            # os.walk: about twice as fast as Path.rglob on 10,000 job directories. It does not
            # follow links to directories; a link to a file is checked below.
            for directory, _dirs, files in os.walk(path):
                if RECORD_NAME in files:
                    record = Path(directory, RECORD_NAME)
                    if record.is_symlink():
                        root = root or path.resolve()
                        target = record.resolve()
                        if not target.is_relative_to(root):
                            if outside is not None:
                                outside.append((record, f"a link to {target}, outside {path}"))
                            continue
                    found.add(record)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(found)


def _difference(minuend: object, subtrahend: object) -> float | None:
    numbers = (minuend, subtrahend)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        return float(minuend) - float(subtrahend)  # type: ignore[arg-type]
    return None


def generalization_gap(final: dict[str, Any]) -> dict[str, float | None]:
    """:data:`GAP_METRICS` of a record's final metrics (``None`` without training scores): Top-1
    on the training images minus on the validation set (points), and the validation loss minus
    the loss on the training images; both of the final evaluation, in eval mode."""
    train = TRAIN_EVAL_PREFIX
    return {
        "gap_top1": _difference(final.get(f"{train}top1"), final.get("top1")),
        "gap_loss": _difference(final.get("loss"), final.get(f"{train}loss")),
    }


def record_row(record: RunRecord) -> dict[str, Any]:
    """The flat row of one record: its identifying config keys and its final metrics."""
    config, final = record.config, record.final
    return {
        "study": record.study,
        "status": record.status,
        "task": config.get("task", {}).get("name"),
        "data": config.get("data", {}).get("name"),
        "backbone": config.get("backbone", {}).get("name"),
        "regularizer": config.get("regularizer", {}).get("name"),
        "batch": record.batch,
        "subdivisions": record.subdivisions,
        "mini_batch": record.mini_batch,
        "epochs": config.get("epochs"),
        "seed": config.get("seed"),
        "top1": record.final.get("top1"),
        "top5": record.final.get("top5"),
        "loss": record.final.get("loss"),
        "best_top1": record.best.get("top1"),
        "best_top5": record.best.get("top5"),
        "train_eval_top1": final.get(f"{TRAIN_EVAL_PREFIX}top1"),
        "train_eval_loss": final.get(f"{TRAIN_EVAL_PREFIX}loss"),
        **generalization_gap(final),
        **{name: record.final.get(name) for name in DETECTION_METRICS},
        "throughput": record.throughput,
        "params": record.params,
        "flops": record.flops,
        "commit": record.code_version.commit,
        "dirty": record.code_version.dirty,
        "edits": record.code_version.edits,
        "config_hash": record.config_hash,
        "error": record.error,
        "job_dir": record.job_dir,
        "started_at": record.started_at or None,
    }


#: Columns of :func:`record_row` and the types their values may have (besides ``None``).
_ROW_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        ("study", "status", "task", "data", "backbone", "regularizer", "commit", "edits", "config_hash",
         "error", "job_dir", "started_at"),
        (str,),
    ),
    **dict.fromkeys(("batch", "subdivisions", "mini_batch", "epochs", "seed", "params", "flops"), (int,)),
    "dirty": (bool,),
}  # fmt: skip


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "unknown")


def _check_objects(data: object) -> None:
    """Raise ``ValueError`` unless the record and the parts a report indexes are objects."""
    if not isinstance(data, dict):
        raise ValueError(f"the file holds {_json_type(data)}, not an object")
    parts = {k: data.get(k) for k in ("config", "final", "best", "code_version", "packages")}
    config = data.get("config")
    if isinstance(config, dict):
        parts |= {f"config.{k}": config.get(k) for k in ("task", "data", "backbone", "regularizer")}
    for name, value in parts.items():
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name} is {_json_type(value)}, not an object")
    if not isinstance(data.get("epochs") or [], list) or not all(
        isinstance(e, dict) for e in data.get("epochs") or []
    ):
        raise ValueError("epochs is not an array of objects")


def _check(record: RunRecord) -> None:
    """Raise ``ValueError`` naming the first field a report could not use."""
    row = record_row(record)
    for name, value in row.items():
        if value is None:
            continue
        allowed = _ROW_TYPES.get(name, (int, float))  # every other column is a number
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise ValueError(f"{name} is {type(value).__name__} {value!r:.40}")
    for epoch in record.epochs:
        if not isinstance(epoch.epoch, int) or not isinstance(epoch.metrics, dict):
            raise ValueError(f"epoch entry {epoch.epoch!r:.40} is malformed")
        for name, value in epoch.metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"epoch {epoch.epoch} {name} is {type(value).__name__}")


def read_record(path: str | os.PathLike[str], *, epochs: bool = True) -> RunRecord:
    """One ``run.json``, with every field a report reads checked; its ``job_dir`` set to where
    it lies (records move).

    ``epochs=False`` leaves the per-epoch list empty (the tables need only ``final`` and
    ``best``; skipping the epochs saves a fifth of the reading time on large studies).

    Raises:
        ValueError: ``<path>: not a valid run record (<why>)`` for anything that is not a
            readable record of a known schema: bad JSON or encoding, wrong types, too deep.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
        _check_objects(data)
        if not epochs:
            data.pop("epochs", None)
        record = RunRecord.from_dict(data)
        _check(record)
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as err:
        reason = str(err).removeprefix(f"{path}: ") or type(err).__name__
        raise ValueError(f"{path}: not a valid run record ({reason})") from None
    record.job_dir = str(path.parent)
    return record


def load_records(
    paths: Iterable[str | os.PathLike[str]],
    *,
    epochs: bool = True,
    unreadable: list[tuple[Path, str]] | None = None,
) -> list[RunRecord]:
    """Every record under ``paths`` (:func:`find_records`, :func:`read_record`).

    Args:
        epochs: read the per-epoch metrics (see :func:`read_record`).
        unreadable: if given, a record that cannot be read (or links out of its directory)
            is appended to it as ``(path, reason)`` and skipped; otherwise a ``ValueError`` is
            raised.
    """
    records = []
    outside: list[tuple[Path, str]] = []
    found = find_records(paths, outside)
    if outside and unreadable is None:
        path, reason = outside[0]
        raise ValueError(f"{path}: not a valid run record ({reason})")
    if unreadable is not None:
        unreadable.extend(outside)
    for path in found:
        try:
            records.append(read_record(path, epochs=epochs))
        except ValueError as err:
            if unreadable is None:
                raise
            text = str(err).removeprefix(f"{path}: not a valid run record (").removesuffix(")")
            unreadable.append((path, text))
    return records


#: Integer columns, kept integer (nullable) when a record lacks them: ``epochs=3``, not ``3.0``.
INTEGER_COLUMNS = ("batch", "subdivisions", "mini_batch", "epochs", "seed", "params", "flops")


def runs_table(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per record (see :data:`COLUMNS`)."""
    table = pd.DataFrame([record_row(r) for r in records], columns=COLUMNS)
    return table.astype({c: "Int64" for c in INTEGER_COLUMNS})


def curves_table(records: Iterable[RunRecord]) -> pd.DataFrame:
    """Learning curves, long form: one row per (run, evaluated epoch), its validation metrics."""
    rows = [
        {"job_dir": r.job_dir, "epoch": e.epoch, **e.metrics}
        for r in records
        for e in r.epochs
        if e.metrics
    ]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["job_dir", "epoch"])


def collect_runs(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run record found under ``paths`` (see :data:`COLUMNS`)."""
    return runs_table(load_records(paths))
