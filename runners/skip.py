"""Idempotent studies: a job whose directory already holds the same finished run is skipped.

Running a study's command again only runs what is missing. A job is skipped when its
``run.json`` says ``completed`` with the same config hash and the same code version: a clean
checkout of the same git commit. A record written by other code (another commit, or edits not
committed then or now) is stale, and the job reruns rather than mixing results of two code
versions in one table. Unfinished, failed and diverged jobs rerun too (resuming from a
checkpoint is a later stage). ``force=true`` reruns everything.
"""

from __future__ import annotations

import logging
from pathlib import Path

from runners.record import RECORD_NAME, CodeVersion, RunRecord, load_record

__all__ = ["reusable_record"]

log = logging.getLogger(__name__)


def _why_not(previous: RunRecord, config_hash: str, code: CodeVersion) -> str | None:
    if previous.status != "completed":
        return f"its last run ended {previous.status}"
    if previous.config_hash != config_hash:
        return f"its config changed (hash {previous.config_hash} -> {config_hash})"
    old = previous.code_version
    if code.commit is None or code.dirty is not False:
        return "the code now has uncommitted edits (or is not a git checkout)"
    if old.commit != code.commit or old.dirty is not False:
        state = f"{old.commit}{' with edits' if old.dirty else ''}"
        return f"it was run with other code ({state}; now {code.commit})"
    return None


def reusable_record(job_dir: str | Path, config_hash: str, code: CodeVersion) -> RunRecord | None:
    """The completed record in ``job_dir`` if it can stand for this job, else ``None``.

    Logs why an existing record is not reused, so a rerun is never a surprise.
    """
    path = Path(job_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        previous = load_record(path)
    except (OSError, ValueError) as err:
        log.warning("rerunning %s: its run record cannot be read (%s)", job_dir, err)
        return None
    reason = _why_not(previous, config_hash, code)
    if reason is not None:
        log.info("rerunning %s: %s", job_dir, reason)
        return None
    return previous
