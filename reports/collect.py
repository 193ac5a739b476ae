"""Collect run records from directories into one pandas table (one row per run).

Records are read only through ``runners.record`` (the shared schema); nothing here trains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from runners.record import COCO_METRICS, RECORD_NAME, RunRecord, load_record

__all__ = [
    "DETECTION_METRICS",
    "collect_runs",
    "curves_table",
    "find_records",
    "load_records",
    "record_row",
    "runs_table",
]

#: COCOeval's twelve bbox numbers, in its order (percent), as ``task=detect`` records them.
DETECTION_METRICS = COCO_METRICS

#: Columns of the runs table, in order.
COLUMNS = [
    "study", "status", "task", "data", "backbone", "regularizer", "batch", "subdivisions",
    "mini_batch", "epochs", "seed", "top1", "top5", "loss", "best_top1", "best_top5",
    *DETECTION_METRICS, "throughput", "params", "flops", "commit", "dirty", "config_hash", "error", "job_dir", "started_at",
]  # fmt: skip


def find_records(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``run.json`` under the given directories (recursively) or named directly, sorted."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            # os.walk: about twice as fast as Path.rglob on 10,000 job directories.
            for directory, _dirs, files in os.walk(path):
                if RECORD_NAME in files:
                    found.add(Path(directory, RECORD_NAME))
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(found)


def record_row(record: RunRecord) -> dict[str, Any]:
    """The flat row of one record: its identifying config keys and its final metrics."""
    config = record.config
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
        **{name: record.final.get(name) for name in DETECTION_METRICS},
        "throughput": record.throughput,
        "params": record.params,
        "flops": record.flops,
        "commit": record.code_version.commit,
        "dirty": record.code_version.dirty,
        "config_hash": record.config_hash,
        "error": record.error,
        "job_dir": record.job_dir,
        "started_at": record.started_at or None,
    }


def load_records(
    paths: Iterable[str | os.PathLike[str]], *, epochs: bool = True
) -> list[RunRecord]:
    """Every record under ``paths``, its ``job_dir`` set to where it was found (records move).

    ``epochs=False`` leaves each record's per-epoch list empty (the tables need only ``final``
    and ``best``; skipping the epochs saves a fifth of the reading time on large studies).
    """
    records = []
    for path in find_records(paths):
        if epochs:
            record = load_record(path)
        else:
            try:
                data = json.loads(path.read_bytes())
                data.pop("epochs", None)
                record = RunRecord.from_dict(data)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}: not a valid run record ({err})") from None
        record.job_dir = str(path.parent)
        records.append(record)
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
