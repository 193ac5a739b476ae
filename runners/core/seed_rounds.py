"""``seeds_auto.json``: what ``seeds=auto`` decided, round by round, and why it stopped.

Written by the seeds sweeper (``runners.seeds``) into the study directory after every round;
read by the report (``reports.seeds_note``), which states the rounds and the reason in
RESULTS.md. Defined once here, so writer and reader share it. The file lies in a study
directory, which may be damaged or hostile: :func:`read_seed_rounds` checks every field and
raises ``ValueError`` with the reason instead of guessing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runners.core.atomic_write import atomic_write

__all__ = ["SEED_ROUNDS_NAME", "SeedRounds", "read_seed_rounds"]

SEED_ROUNDS_NAME = "seeds_auto.json"
_VERSION = 1
#: Larger files are not read (a real one holds a few kB).
_MAX_BYTES = 4 * 2**20
#: Why the rounds stopped (``stopped``), as a word: settled, max_seeds, max_jobs, failed.
STOPS = ("settled", "max_seeds", "max_jobs", "failed")


@dataclass
class SeedRounds:
    """The rounds so far: ``rounds[k]`` maps each cell (its overrides, ``a=1,b=2``) that got
    seeds in round ``k + 1`` to those seeds. ``stopped``/``reason`` are empty while running."""

    metric: str
    target_halfwidth: float
    max_seeds: int
    max_jobs: int | None
    cells: int
    rounds: list[dict[str, list[int]]] = field(default_factory=list)
    stopped: str = ""
    reason: str = ""
    #: The comparisons still open when it stopped, in words.
    open: list[str] = field(default_factory=list)

    def write(self, study_dir: str | os.PathLike[str]) -> Path:
        """Write (atomically) ``seeds_auto.json`` into ``study_dir``."""
        data = {"version": _VERSION, **asdict(self)}
        return atomic_write(Path(study_dir) / SEED_ROUNDS_NAME, json.dumps(data, indent=1) + "\n")

    def seeds_per_cell(self) -> dict[str, int]:
        """How many seeds each cell got over all rounds."""
        counts: dict[str, int] = {}
        for round_ in self.rounds:
            for cell, seeds in round_.items():
                counts[cell] = counts.get(cell, 0) + len(seeds)
        return counts


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _rounds(value: Any) -> list[dict[str, list[int]]]:
    _check(isinstance(value, list), "rounds is not an array")
    out = []
    for round_ in value:
        _check(isinstance(round_, dict), "a round is not an object")
        for cell, seeds in round_.items():
            _check(
                isinstance(seeds, list)
                and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds),
                f"the seeds of cell {cell!r:.60} are not an array of integers",
            )
        out.append(dict(round_))
    return out


def _number(data: dict, key: str, kinds: tuple[type, ...], nullable: bool = False) -> Any:
    value = data.get(key)
    ok = (value is None and nullable) or (isinstance(value, kinds) and not isinstance(value, bool))
    _check(ok, f"{key} is {value!r:.40}")
    return value


def read_seed_rounds(path: str | os.PathLike[str]) -> SeedRounds:
    """The rounds in ``path``. Raises ``ValueError`` (the reason, without the path) when the
    file is unreadable, too large, not JSON or not this shape."""
    path = Path(path)
    try:
        _check(path.stat().st_size <= _MAX_BYTES, f"larger than {_MAX_BYTES} bytes")
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(str(err) or type(err).__name__) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err})") from None
    _check(isinstance(data, dict), "the file does not hold an object")
    _check(data.get("version") == _VERSION, f"version {data.get('version')!r:.20} is not 1")
    texts = {k: data.get(k) for k in ("metric", "stopped", "reason")}
    for key, value in texts.items():
        _check(isinstance(value, str), f"{key} is not a string")
    _check(texts["stopped"] in ("", *STOPS), f"stopped is {texts['stopped']!r:.40}")
    open_ = data.get("open", [])
    _check(isinstance(open_, list) and all(isinstance(o, str) for o in open_), "open is malformed")
    return SeedRounds(
        metric=texts["metric"],
        target_halfwidth=float(_number(data, "target_halfwidth", (int, float))),
        max_seeds=_number(data, "max_seeds", (int,)),
        max_jobs=_number(data, "max_jobs", (int,), nullable=True),
        cells=_number(data, "cells", (int,)),
        rounds=_rounds(data.get("rounds")),
        stopped=texts["stopped"],
        reason=texts["reason"],
        open=list(open_),
    )
