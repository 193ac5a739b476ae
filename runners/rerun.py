"""What running a job again does with what its directory already holds (docs/ROBUSTNESS.md).

Running a study's command again only finishes what is missing, and never turns stale or
diverged work into a result. Given the job directory's earlier record, the job's config hash
and the code version now, :func:`plan_rerun` decides one of three actions:

==========================  ===============  ==============  ===========================
earlier record              same config      same config     other config, or
                            and same code    but other code  no usable record
==========================  ===============  ==============  ===========================
completed                   skip             fresh           fresh
diverged                    skip (final)     fresh           fresh
failed, pruned, running     resume           fresh           fresh
==========================  ===============  ==============  ===========================

*resume* continues from ``checkpoint.pt`` when the checkpoint itself was written by the same
config and code (``runners.engine.checkpoint`` checks again), else it starts over; *fresh* starts
from scratch and removes the earlier checkpoint. ``force=true`` is *fresh* for every job.
"Same code" is :meth:`CodeVersion.same_as`: one commit, with the same uncommitted edits or
none; code that cannot be identified (not a git checkout) is never the same. A record that is
replaced is kept in ``history/`` (:func:`keep_in_history`), never lost.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runners.core.record import RECORD_NAME, CodeVersion, RunRecord, load_record

__all__ = ["HISTORY_DIR", "RerunPlan", "keep_in_history", "plan_rerun"]

log = logging.getLogger(__name__)

#: Where replaced run records go, as ``run.<n>.json`` (1 the oldest).
HISTORY_DIR = "history"

Action = Literal["skip", "resume", "fresh"]
#: Statuses that are a job's final result when config and code are unchanged.
_FINAL = ("completed", "diverged")


@dataclass(frozen=True)
class RerunPlan:
    """The action for a job, why (for the log), and the earlier record if one could be read."""

    action: Action
    reason: str
    previous: RunRecord | None = None


def plan_rerun(
    job_dir: str | os.PathLike[str], config_hash: str, code: CodeVersion, *, force: bool = False
) -> RerunPlan:
    """Decide what to do with ``job_dir`` (see the module's table)."""
    path = Path(job_dir) / RECORD_NAME
    if not path.is_file():
        return RerunPlan("fresh", "no earlier run")
    try:
        previous = load_record(path)
    except (OSError, ValueError) as err:
        return RerunPlan("fresh", f"its run record cannot be read ({err})")
    if force:
        return RerunPlan("fresh", "force=true", previous)
    if previous.config_hash != config_hash:
        reason = f"its config changed (hash {previous.config_hash} -> {config_hash})"
        return RerunPlan("fresh", reason, previous)
    if not code.same_as(previous.code_version):
        if not code.same_as(code):
            reason = f"the code cannot be identified now ({code.describe()})"
        else:
            reason = (
                f"it was run with other code ({previous.code_version.describe()}; "
                f"now {code.describe()})"
            )
        return RerunPlan("fresh", reason, previous)
    if previous.status in _FINAL:
        return RerunPlan("skip", f"already {previous.status} with this config and code", previous)
    return RerunPlan("resume", f"its last run ended {previous.status}", previous)


def keep_in_history(job_dir: str | os.PathLike[str]) -> Path | None:
    """Move the job's ``run.json`` to ``history/run.<n>.json`` (n one past the highest there);
    returns the new path, or ``None`` when there was no record. Call it holding the job lock."""
    source = Path(job_dir) / RECORD_NAME
    if not source.is_file():
        return None
    history = Path(job_dir) / HISTORY_DIR
    history.mkdir(exist_ok=True)
    numbers = [
        int(p.name.split(".")[1])
        for p in history.glob("run.*.json")
        if p.name.split(".")[1].isdigit()
    ]
    target = history / f"run.{max(numbers, default=0) + 1}.json"
    os.replace(source, target)
    return target
