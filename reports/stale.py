"""Stale runs: records of a study trained on another code version than the study's newest run.

The seed's thread compared DropBlock runs made before and after its kernel was fixed
(darknet a9bae4f0); a table that silently mixes code versions repeats that. Rule:

- a run's code version is its record's ``code_version``: the commit, plus ``-dirty`` and the
  fingerprint of the edits when the tree had uncommitted edits (``1a2b3c4-dirty.9f8e7d6c``; two
  dirty runs of one commit with the same edits are the same version; records written before the
  fingerprint existed say only ``-dirty`` and count as one version);
- within each study, the *newest* run is the one with the latest ``started_at`` (ISO 8601 UTC, so
  text order is time order; ties broken by ``job_dir``); its version is the study's version;
- every run of the study with another version (an unknown commit included) is stale.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["code_label", "stale_reasons"]


def code_label(commit: object, dirty: object, edits: object = None) -> str:
    """``1a2b3c4`` (short commit), ``1a2b3c4-dirty.9f8e7d6c`` (with the edits' fingerprint),
    ``1a2b3c4-dirty`` (edits not fingerprinted), or ``unknown`` when not recorded."""
    if not isinstance(commit, str) or not commit:
        return "unknown"
    if dirty is not True:
        return commit[:7]
    return commit[:7] + "-dirty" + (f".{edits[:8]}" if isinstance(edits, str) and edits else "")


def stale_reasons(runs: pd.DataFrame) -> pd.Series:
    """For each run, why it is stale (``"code 1a2b3c4, newest runs 5d6e7f8"``), else ``""``.

    Args:
        runs: the runs table of :func:`reports.collect.collect_runs` (columns ``study``,
            ``commit``, ``dirty``, ``started_at``, ``job_dir``).

    Returns:
        A string Series aligned with ``runs.index``.
    """
    if runs.empty:
        return pd.Series("", index=runs.index, dtype=object)
    edits = runs["edits"] if "edits" in runs else [None] * len(runs)
    labels = [
        code_label(c, d, e) for c, d, e in zip(runs["commit"], runs["dirty"], edits, strict=True)
    ]
    started = runs["started_at"].fillna("").astype(str).tolist()
    newest: dict[object, tuple[str, str, str]] = {}  # study -> (started_at, job_dir, label)
    for study, start, job_dir, label in zip(
        runs["study"], started, runs["job_dir"].astype(str), labels, strict=True
    ):
        key = (start, job_dir, label)
        if study not in newest or key[:2] > newest[study][:2]:
            newest[study] = key
    reasons = [
        "" if label == newest[study][2] else f"code {label}, newest runs {newest[study][2]}"
        for study, label in zip(runs["study"], labels, strict=True)
    ]
    return pd.Series(reasons, index=runs.index, dtype=object)
