"""Per-epoch progress: a tqdm bar on a terminal, plain log lines otherwise (files, CI, SLURM)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["EpochProgress"]

log = logging.getLogger("runners.tracking.progress")


class EpochProgress:
    """A bar over one epoch's optimizer steps. ``update`` is cheap; postfix values are only
    formatted when the bar redraws, so they may be tensors without forcing a sync every step."""

    def __init__(self, total: int, desc: str, enabled: bool | None = None) -> None:
        self.desc = desc
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = (
            tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True) if self.enabled else None
        )

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self, summary: dict[str, Any]) -> None:
        """End the epoch with one line of results, whatever the output is."""
        if self._bar is not None:
            self._bar.close()
        log.info("%s  %s", self.desc, "  ".join(f"{k}={v}" for k, v in summary.items()))
