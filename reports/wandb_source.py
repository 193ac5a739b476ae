"""Run records rebuilt from W&B runs of the harness: online (``wandb.Api``) or offline logs.

What a job logs to W&B (``runners.job`` and ``runners.engine.hooks``): the resolved config, one history
row per epoch (``epoch``, ``train_loss``, ``lr`` and the task's metrics), and a summary with
``status``, ``params``, ``flops``, ``code_commit``, ``code_dirty``, ``code_edits``, ``started_at``,
``mini_batch``, ``world_size`` and, for a
completed run, ``final_<metric>`` / ``best_<metric>``. :func:`record_from_wandb` turns that back
into a :class:`runners.core.record.RunRecord`, so reports read W&B through the same schema as
``run.json`` and produce the same tables.

Runs logged before the summary carried ``status`` fall back on W&B's own state (finished ->
completed, running -> running, anything else -> failed) and on W&B's git commit.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners.core.record import STATUSES, CodeVersion, EpochMetrics, RunRecord

__all__ = ["fetch_wandb_records", "offline_records", "record_from_wandb"]

_STATE = {"finished": "completed", "running": "running", "pending": "running"}
_NOT_METRICS = frozenset({"epoch", "train_loss", "lr"})


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    """Drop W&B's own keys; unwrap ``{"value": v}`` entries of the GraphQL config."""
    out = {}
    for key, value in config.items():
        if key.startswith("_wandb") or key == "wandb_version":
            continue
        if isinstance(value, dict) and set(value) <= {"value", "desc"} and "value" in value:
            value = value["value"]
        out[key] = value
    return out


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):  # W&B writes NaN/Infinity as strings in JSON
        return float(value.lower().replace("infinity", "inf"))
    return float(value)


def record_from_wandb(
    *,
    run_id: str,
    name: str,
    group: str,
    state: str,
    config: dict[str, Any],
    summary: dict[str, Any],
    history: Iterable[dict[str, Any]],
    commit: str | None = None,
    created_at: str | None = None,
    source: str = "",
) -> RunRecord:
    """A run record from one W&B run's parts (see the module docstring for the mapping).

    Args:
        state: W&B's run state (``finished``, ``running``, ``failed``, ``crashed``, ...).
        source: where the run came from (``wandb:entity/project/id``, or the offline run's
            directory); it becomes the record's ``job_dir``.
    """
    config = _unwrap(config)
    status = summary.get("status")
    if status not in STATUSES:
        status = _STATE.get(state, "failed")
    batch = int(config.get("batch") or 0)
    subdivisions = int(config.get("subdivisions") or 1)
    epochs = _epochs(history)
    final, best = _prefixed(summary, "final_"), _prefixed(summary, "best_")
    return RunRecord(
        status=status,
        study=group or str(config.get("study", "")),
        run_name=name,
        job_dir=source or run_id,
        config=config,
        code_version=_code_version(summary, commit),
        batch=batch,
        subdivisions=subdivisions,
        # Under DDP without SyncBatchNorm a forward sees batch / subdivisions / world_size.
        mini_batch=int(summary.get("mini_batch") or (batch // subdivisions if subdivisions else 0)),
        params=summary.get("params"),
        flops=summary.get("flops"),
        epochs=epochs,
        final=final,
        best=best,
        started_at=str(summary.get("started_at") or created_at or ""),
    )


def _epochs(history: Iterable[dict[str, Any]]) -> list[EpochMetrics]:
    """The evaluated epochs of a W&B history (rows with an ``epoch``), in epoch order; W&B
    keeps no epoch times, so those are NaN."""
    epochs = []
    for row in history:
        if "epoch" not in row:
            continue
        metrics = {
            k: _number(v) for k, v in row.items() if k not in _NOT_METRICS and not k.startswith("_")
        }
        epochs.append(
            EpochMetrics(
                epoch=int(row["epoch"]),
                train_loss=_number(row.get("train_loss")),
                lr=_number(row.get("lr")),
                epoch_time_s=math.nan,
                images_per_s=math.nan,
                metrics=metrics,
            )
        )
    return sorted(epochs, key=lambda e: e.epoch)


def _prefixed(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"top1": 71.2}`` from the summary's ``final_top1`` (``prefix="final_"``)."""
    return {k[len(prefix) :]: _number(v) for k, v in summary.items() if k.startswith(prefix)}


def _code_version(summary: dict[str, Any], commit: str | None) -> CodeVersion:
    """The summary's code version; W&B's own git ``commit`` for runs logged before it had one."""
    dirty, edits = summary.get("code_dirty"), summary.get("code_edits")
    return CodeVersion(
        commit=summary.get("code_commit") or commit,
        dirty=dirty if isinstance(dirty, bool) else None,
        edits=edits if isinstance(edits, str) else None,
    )


def newest_per_job(runs: Iterable[tuple[object, RunRecord]]) -> list[RunRecord]:
    """One record per job: of several W&B runs of one job directory (a job rerun after a
    failure, or with ``force=true``, starts a new W&B run), the one started last, as
    ``run.json`` is the newest record of its job. Runs without a job directory (W&B summaries
    written before it was recorded) are all kept."""
    newest: dict[str, RunRecord] = {}
    kept: list[RunRecord] = []
    for job_dir, record in runs:
        if not isinstance(job_dir, str) or not job_dir:
            kept.append(record)
        elif job_dir not in newest or record.started_at > newest[job_dir].started_at:
            newest[job_dir] = record
    return kept + list(newest.values())


def offline_records(paths: Iterable[str | os.PathLike[str]]) -> list[RunRecord]:
    """Records of every offline W&B run (``wandb/offline-run-*``) under ``paths``, the newest
    per job directory (:func:`newest_per_job`)."""
    records = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or directory")
        for directory in find_offline_runs(root):
            run = read_offline_run(directory)
            state = {None: "running", 0: "finished"}.get(run.exit_code, "failed")
            records.append((
                run.summary.get("job_dir"),
                record_from_wandb(
                    run_id=run.run_id,
                    name=run.name,
                    group=run.group,
                    state=state,
                    config=run.config,
                    summary=run.summary,
                    history=run.history,
                    commit=run.commit or None,
                    created_at=run.started_at or None,
                    source=str(directory),
                ),
            ))  # fmt: skip
    return newest_per_job(records)


def fetch_wandb_records(path: str, *, api: Any = None, per_page: int = 100) -> list[RunRecord]:
    """Records of every run of the W&B project ``ENTITY/PROJECT`` (needs network and a key).

    Args:
        path: ``entity/project``.
        api: a ``wandb.Api`` (default: a new one, configured from the environment).
    """
    if path.count("/") != 1 or not all(path.split("/")):
        raise ValueError(f"--wandb takes ENTITY/PROJECT, got {path!r}")
    if api is None:
        import wandb

        api = wandb.Api(timeout=60)
    listing = {"per_page": per_page}
    if "lazy" in inspect.signature(api.runs).parameters:
        listing["lazy"] = False  # config and summary in the listing query, not one query per run
    records = []
    for run in api.runs(path, **listing):
        summary = dict(run.summary_metrics)
        records.append((
            summary.get("job_dir"),
            record_from_wandb(
                run_id=run.id,
                name=run.name or run.id,
                group=run.group or "",
                state=run.state,
                config=dict(run.config),
                summary=summary,
                history=run.history(samples=100_000, pandas=False),
                commit=getattr(run, "commit", None),
                created_at=getattr(run, "created_at", None),
                source=f"wandb:{path}/{run.id}",
            ),
        ))  # fmt: skip
    return newest_per_job(records)
