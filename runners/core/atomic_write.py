"""The one way result files are written: whole or not at all, with the process umask's mode.

Every result file of the harness (run record, checkpoint and its sidecar, detections, RESULTS.md,
plots, study summaries) goes through :func:`atomic_write`: the content goes to a temporary file
with a unique name beside the target (``.<name>.tmp-<random>``), is flushed and fsynced, gets the
mode an ordinary ``open()`` would give it (``0o666 & ~umask``; ``mkstemp`` alone makes it 0600),
and replaces the target with ``os.replace``, which is atomic on POSIX file systems. A reader or a
crash sees the old file or the new one, never half of one, and two writers of the same file never
share a temporary name.

A kill between the temporary file's creation and the rename leaves the temporary file behind.
:func:`remove_orphans` deletes those, and is called by whoever holds the directory exclusively
(the job lock for a job directory, the report lock for a study directory), so no live writer's
file is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMPORARY_MARK", "atomic_write", "file_mode", "remove_orphans"]

log = logging.getLogger(__name__)

#: What every temporary name carries between the target's name and its random suffix.
TEMPORARY_MARK = ".tmp-"
_ORPHAN = re.compile(r"^\..+\.tmp-[A-Za-z0-9_]+$")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def atomic_write(
    target: str | os.PathLike[str],
    content: str | bytes | Callable[[IO[Any]], object],
    *,
    binary: bool | None = None,
    mode: int | None = None,
) -> Path:
    """Write ``content`` to ``target`` atomically; returns the target's path.

    Args:
        target: the file to create or replace; its directory is created if missing.
        content: text, bytes, or a function that writes to the open temporary file (for
            ``torch.save``, ``json.dump``, ``savefig(..., format=...)``).
        binary: whether a writing function gets a binary handle (default: text for ``str``,
            binary for ``bytes`` and for functions).
        mode: the file's permission bits (default: :func:`file_mode`, what the umask gives).
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary is None:
        binary = not isinstance(content, str)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMPORARY_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as out:
            if callable(content):
                content(out)
            else:
                out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_orphans(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory`` (not recursive).

    Call it only while holding ``directory`` exclusively; returns what was removed.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if _ORPHAN.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    if removed:
        log.info(
            "removed %d temporary file(s) of an interrupted write in %s", len(removed), directory
        )
    return removed
