"""One writer per job directory: an OS file lock that dies with its process.

Two identical multiruns started at once (two terminals, two SLURM arrays over one study, a
retried launcher) would otherwise both train every job and interleave their writes to the same
``run.json`` and ``checkpoint.pt``. Before a job reads its directory's earlier record, it takes
``<job dir>/.lock`` with ``fcntl.flock(LOCK_EX | LOCK_NB)``. The kernel releases the lock when
the holder's file descriptor closes, including when the process is killed, so a crash never
leaves a job locked; a stale ``.lock`` file is just an empty file. A process that finds the job
locked neither trains nor writes it: it says so and moves on (:class:`JobLocked`).

``flock`` locks are honoured across processes on one machine and, on Linux, over NFS (the
kernel maps them to byte-range locks since 2.6.12); Lustre needs the ``flock`` mount option.
The holder writes ``pid@host`` into the lock file so the message can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "REPORT_LOCK_NAME", "JobLock", "JobLocked", "is_locked", "report_lock"]

LOCK_NAME = ".lock"
#: Held (blocking, briefly) by whoever writes a study directory's reports.
REPORT_LOCK_NAME = ".report.lock"


class JobLocked(RuntimeError):
    """Another live process holds the job directory; this one leaves the job to it."""

    run_status = "running"

    def __init__(self, job_dir: Path, holder: str) -> None:
        self.job_dir, self.holder = job_dir, holder
        who = f" ({holder})" if holder else ""
        super().__init__(f"{job_dir} is being run by another process{who}: left to it")


class JobLock:
    """``with JobLock(job_dir):`` holds ``job_dir`` exclusively, or raises :class:`JobLocked`."""

    def __init__(self, job_dir: str | os.PathLike[str]) -> None:
        self.job_dir = Path(job_dir)
        self._fd: int | None = None

    def acquire(self) -> JobLock:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.job_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise JobLocked(self.job_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def is_locked(job_dir: str | os.PathLike[str]) -> bool:
    """Whether a live process holds ``job_dir`` now (a record saying ``running`` without a
    holder is a job that was interrupted)."""
    path = Path(job_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the shared lock taken to probe
    return False


#: Report locks this process holds (path -> depth), so that a writer may call another.
_held_report_locks: dict[Path, int] = {}


@contextlib.contextmanager
def report_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``directory``'s report lock: writers of a study's RESULTS.md, plots and summaries
    (the multirun callback, Optuna workers, ``python -m reports``) take turns, so the one
    holding it may clean up temporaries that killed writers left there. Re-entrant within a
    process (a study summary writes RESULTS.md too)."""
    key = Path(directory).resolve()
    if key in _held_report_locks:
        _held_report_locks[key] += 1
        try:
            yield
        finally:
            _held_report_locks[key] -= 1
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / REPORT_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held_report_locks[key] = 1
        yield
    finally:
        _held_report_locks.pop(key, None)
        os.close(fd)
