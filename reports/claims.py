"""Claims pre-registered in a study's config (``report.claims``), which the Findings check by name.

A claim: ``name``, ``text`` (the claim in words), ``kind`` (``effect``: arm minus baseline;
``interaction``: its change between two levels of the other pivot key), ``arm``, ``metric``,
``direction`` (``increase``/``decrease``), ``size`` in metric points (0: any) and optionally
``at`` (``mini_batch=64``) to pick the level an effect is claimed at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Claim", "claims_in_records", "parse_claims"]

log = logging.getLogger(__name__)

DIRECTIONS = {"increase": 1, "decrease": -1}
KINDS = ("effect", "interaction")


@dataclass(frozen=True)
class Claim:
    """A pre-registered claim (module docstring)."""

    name: str
    text: str
    arm: str
    metric: str = "top1"
    kind: str = "effect"
    direction: str = "increase"
    size: float = 0.0
    at: str | None = None

    @property
    def sign(self) -> int:
        return DIRECTIONS[self.direction]


def parse_claims(items: Sequence[Mapping[str, Any]] | None) -> tuple[Claim, ...]:
    """Claims from config mappings; ValueError naming the claim and key at fault."""
    claims = []
    for i, item in enumerate(items or ()):
        where = f"report.claims[{i}]"
        try:
            claim = Claim(**dict(item))
        except TypeError as err:
            raise ValueError(f"{where}: {err}") from None
        if claim.kind not in KINDS:
            raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}, got {claim.kind!r}")
        if claim.direction not in DIRECTIONS:
            raise ValueError(
                f"{where}.direction must be increase or decrease, got {claim.direction!r}"
            )
        claims.append(claim)
    return tuple(claims)


def claims_in_records(configs: Sequence[Mapping[str, Any]]) -> tuple[Claim, ...]:
    """The claims the runs' own configs pre-register (``report.claims``), first valid one wins.

    Every job of a study carries the study's ``report`` section, so any record says them. A
    record is untrusted input: claims that do not parse are skipped with a warning, so one
    malformed ``run.json`` cannot stop the report of the whole study.
    """
    for config in configs:
        report = config.get("report") if isinstance(config, Mapping) else None
        items = report.get("claims") if isinstance(report, Mapping) else None
        if not items:
            continue
        try:
            if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
                raise ValueError("report.claims must be a list of mappings")
            return parse_claims(items)
        except ValueError as err:
            log.warning("a run record's claims are skipped: %s", err)
    return ()
