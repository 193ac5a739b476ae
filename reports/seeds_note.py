"""RESULTS.md's ``## Seeds`` section: how ``seeds=auto`` chose the seeds and why it stopped.

Read from ``seeds_auto.json`` in the study directory (``runners.core.seed_rounds``), written by
the seeds sweeper after every round. The file is data from a study directory: one that cannot be
read gives a line saying so (and a logged warning), never a failed report.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from runners.core.seed_rounds import SEED_ROUNDS_NAME, SeedRounds, read_seed_rounds

__all__ = ["seeds_line", "seeds_section"]

log = logging.getLogger(__name__)

#: Open comparisons listed under the line when it stopped with some; the rest are counted.
_SHOWN_OPEN = 10


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def seeds_line(rounds: SeedRounds) -> str:
    """``Seeds: chosen by seeds=auto in 3 rounds (2 -> 5 seeds in 4 of 10 cells); stopped
    because ...``."""
    first = {
        cell: len(seeds) for cell, seeds in (rounds.rounds[0] if rounds.rounds else {}).items()
    }
    total = rounds.seeds_per_cell()
    start = min(first.values(), default=0)
    extended = [cell for cell, n in total.items() if n > first.get(cell, 0)]
    if extended:
        most = max(total[cell] for cell in extended)
        growth = f"{start} -> {most} seeds in {len(extended)} of {rounds.cells} cells"
    else:
        growth = f"{_plural(start, 'seed')} in each of {_plural(rounds.cells, 'cell')}"
    why = (
        f"stopped because {rounds.reason}"
        if rounds.stopped
        else "it has not stopped (still running, or interrupted: run the command again)"
    )
    return (
        f"Seeds: chosen by seeds=auto in {_plural(len(rounds.rounds), 'round')} ({growth}); {why}."
    )


def seeds_section(root: str | os.PathLike[str] | None) -> list[str]:
    """``## Seeds`` when ``root`` holds a ``seeds_auto.json``; ``[]`` otherwise."""
    if root is None:
        return []
    path = Path(root) / SEED_ROUNDS_NAME
    if not path.is_file():
        return []
    try:
        rounds = read_seed_rounds(path)
    except ValueError as err:
        log.warning("%s: not a valid seeds=auto file (%s)", path, err)
        return [
            "## Seeds",
            "",
            f"Seeds: chosen by seeds=auto, but {SEED_ROUNDS_NAME} cannot be read ({err}).",
            "",
        ]
    lines = ["## Seeds", "", seeds_line(rounds), ""]
    if rounds.stopped and rounds.open:
        lines += [f"Still open ({rounds.metric}, target ±{rounds.target_halfwidth:g}):", ""]
        lines += [f"- {text}" for text in rounds.open[:_SHOWN_OPEN]]
        if len(rounds.open) > _SHOWN_OPEN:
            lines.append(f"- and {len(rounds.open) - _SHOWN_OPEN} more")
        lines.append("")
    return lines
