"""What a multirun's jobs came to, and the exit status of the command that ran them.

A failed or diverged job does not stop a sweep (``run.py`` records it and returns), so the
remaining jobs still run and the results table is still written. The process must still tell
a script or CI that something went wrong: the results callback calls
:meth:`SweepOutcome.summarize` at the end of the multirun, and ``run.py`` exits with
:meth:`SweepOutcome.exit_status`.

The jobs of this sweep are the run records that were written while it ran (compared with a
:func:`snapshot` taken at its start). Records left untouched are jobs skipped as already
completed, or runs of other commands that share the sweep directory; neither changes the
status. This works the same whether jobs ran in this process (basic launcher), in worker
processes (joblib) or on other machines sharing the file system (submitit).

One :class:`SweepOutcome` per process, reached through :func:`current`. Three places write it
and none of them can be handed an object: ``run.py``'s ``main`` (wrapped by ``hydra.main``),
the results callback and the Optuna sweeper (both built by Hydra from the config). ``run.py``'s
``cli`` reads it once the command is over. :func:`reset` gives tests a fresh one.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from runners.core.job_lock import is_locked
from runners.core.record import RECORD_NAME, RunRecord, load_record

__all__ = ["EXIT_FAILED", "Snapshot", "SweepOutcome", "current", "reset", "snapshot"]

log = logging.getLogger(__name__)

#: A job of the sweep failed or diverged (Hydra's own status when a job raises).
EXIT_FAILED = 1

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


def _written_since(sweep_dir: str | os.PathLike[str], before: Snapshot) -> list[RunRecord]:
    """The records under ``sweep_dir`` that are not in ``before`` as they were (unreadable ones
    are logged and left out)."""
    records = []
    for path, identity in sorted(snapshot(sweep_dir).items()):
        if before.get(path) == identity:
            continue
        try:
            records.append(load_record(path))
        except ValueError as err:  # names the file
            log.warning("%s", err)
    return records


@dataclass
class SweepOutcome:
    """The outcome of this process's command: whether its jobs started, and its exit status."""

    #: 0, or :data:`EXIT_FAILED` once something went wrong.
    status: int = 0
    #: Composing is over and jobs are starting (a job, or a multirun's sweep).
    started: bool = False
    #: The jobs are search trials (the Optuna sweeper): a failed trial is an outcome the study
    #: records, not a fault of the command (its workers exit 0 when the study is done; a crash
    #: still exits non-zero).
    jobs_are_trials: bool = False

    def mark_started(self) -> None:
        """Note that composing is over and jobs are starting."""
        self.started = True

    def trials_may_fail(self) -> None:
        """Jobs of this process are search trials: failures are recorded by the study, not here."""
        self.jobs_are_trials = True

    def fail(self) -> None:
        """Make :meth:`exit_status` say that something went wrong."""
        self.status = EXIT_FAILED

    def exit_status(self) -> int:
        """0 if every job of the last multirun completed, else :data:`EXIT_FAILED`."""
        return self.status

    def summarize(self, sweep_dir: str | os.PathLike[str], before: Snapshot) -> list[RunRecord]:
        """Records written since ``before``; logs their statuses and sets :meth:`exit_status`."""
        records = _written_since(sweep_dir, before)
        # A job another live process holds is that process's to finish (runners.core.job_lock).
        elsewhere = [r for r in records if r.status == "running" and is_locked(r.job_dir)]
        for record in elsewhere:
            log.info("still running in another process: %s", record.job_dir)
        records = [r for r in records if r not in elsewhere]
        counts = Counter(r.status for r in records)
        # A pruned trial is the Optuna sweeper's decision, not a fault of the command.
        bad = [r for r in records if r.status not in ("completed", "pruned")]
        self.status = EXIT_FAILED if bad and not self.jobs_are_trials else 0
        if bad:
            shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            lines = [f"{len(bad)} of {len(records)} jobs did not complete ({shown}):"]
            lines += [f"  {r.status}: {r.job_dir}: {r.error}" for r in bad]
            log.error("\n".join(lines))
        return records


_current = SweepOutcome()


def current() -> SweepOutcome:
    """This process's outcome (the one ``run.py``, the results callback and the sweeper share)."""
    return _current


def reset() -> SweepOutcome:
    """Start this process's outcome afresh (for tests); returns the new one."""
    global _current
    _current = SweepOutcome()
    return _current
