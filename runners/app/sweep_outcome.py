"""What a multirun's jobs came to, and the exit status of the command that ran them.

A failed or diverged job does not stop a sweep (``run.py`` records it and returns), so the
remaining jobs still run and the results table is still written. The process must still tell
a script or CI that something went wrong: the results callback calls :func:`summarize` at the
end of the multirun, and ``run.py`` exits with :func:`exit_status`.

The jobs of this sweep are the run records that were written while it ran (compared with a
snapshot taken at its start). Records left untouched are jobs skipped as already completed,
or runs of other commands that share the sweep directory; neither changes the status. This
works the same whether jobs ran in this process (basic launcher), in worker processes
(joblib) or on other machines sharing the file system (submitit).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from runners.core.job_lock import is_locked
from runners.core.record import RECORD_NAME, RunRecord, load_record

__all__ = [
    "EXIT_FAILED",
    "exit_status",
    "fail",
    "mark_started",
    "snapshot",
    "started",
    "summarize",
    "trials_may_fail",
]

log = logging.getLogger(__name__)

#: A job of the sweep failed or diverged (Hydra's own status when a job raises).
EXIT_FAILED = 1

_status = 0
_started = False
#: Set by the Optuna sweeper: a failed trial is an outcome the study records, not a fault of
#: the command (its workers exit 0 when the study is done; a crash still exits non-zero).
_trials_may_fail = False

Snapshot = dict[Path, tuple[int, int]]


def snapshot(sweep_dir: str | os.PathLike[str]) -> Snapshot:
    """Identity (inode, mtime) of every run record under ``sweep_dir`` now."""
    found: Snapshot = {}
    for path in Path(sweep_dir).rglob(RECORD_NAME):
        try:
            stat = path.stat()
        except OSError:
            continue
        found[path] = (stat.st_ino, stat.st_mtime_ns)
    return found


def summarize(sweep_dir: str | os.PathLike[str], before: Snapshot) -> list[RunRecord]:
    """Records written since ``before``; logs their statuses and sets :func:`exit_status`."""
    global _status
    after = snapshot(sweep_dir)
    records = []
    for path, identity in sorted(after.items()):
        if before.get(path) == identity:
            continue
        try:
            records.append(load_record(path))
        except ValueError as err:  # names the file
            log.warning("%s", err)
    # A job that another live process holds is that process's to finish (runners.core.job_lock).
    elsewhere = [r for r in records if r.status == "running" and is_locked(r.job_dir)]
    for record in elsewhere:
        log.info("still running in another process: %s", record.job_dir)
    records = [r for r in records if r not in elsewhere]
    counts = Counter(r.status for r in records)
    # A pruned trial is the Optuna sweeper's decision, not a fault of the command.
    bad = [r for r in records if r.status not in ("completed", "pruned")]
    _status = EXIT_FAILED if bad and not _trials_may_fail else 0
    if bad:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [f"{len(bad)} of {len(records)} jobs did not complete ({shown}):"]
        lines += [f"  {r.status}: {r.job_dir}: {r.error}" for r in bad]
        log.error("\n".join(lines))
    return records


def trials_may_fail() -> None:
    """Jobs of this process are search trials: failures are recorded by the study, not here."""
    global _trials_may_fail
    _trials_may_fail = True


def mark_started() -> None:
    """Note that composing is over and jobs are starting (a job, or a multirun's sweep)."""
    global _started
    _started = True


def started() -> bool:
    """Whether :func:`mark_started` was called in this process."""
    return _started


def fail() -> None:
    """Make :func:`exit_status` say that something went wrong."""
    global _status
    _status = EXIT_FAILED


def exit_status() -> int:
    """0 if every job of the last multirun in this process completed, else :data:`EXIT_FAILED`."""
    return _status
