"""Stale runs: records of a study trained on another code version than the study's newest run.

The seed's thread compared DropBlock runs made before and after its kernel was fixed
(darknet a9bae4f0); a table that silently mixes code versions repeats that. Rule:

- a run's code version is its record's ``code_version``: the commit, plus ``-dirty`` when the
  tree had uncommitted edits (two dirty runs of one commit count as the same version: the record
  does not say what the edits were);
- within each study, the *newest* run is the one with the latest ``started_at`` (ISO 8601 UTC, so
  text order is time order; ties broken by ``job_dir``); its version is the study's version;
- every run of the study with another version (an unknown commit included) is stale.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["code_label", "stale_reasons"]


def code_label(commit: object, dirty: object) -> str:
    """``1a2b3c4`` (short commit), ``1a2b3c4-dirty``, or ``unknown`` when not recorded."""
    if not isinstance(commit, str) or not commit:
        return "unknown"
    return commit[:7] + ("-dirty" if dirty is True else "")


def stale_reasons(runs: pd.DataFrame) -> pd.Series:
    """For each run, why it is stale (``"code 1a2b3c4, newest runs 5d6e7f8"``), else ``""``.

    Args:
        runs: the runs table of :func:`reports.collect.collect_runs` (columns ``study``,
            ``commit``, ``dirty``, ``started_at``, ``job_dir``).

    Returns:
        A string Series aligned with ``runs.index``.
    """
    reasons = pd.Series("", index=runs.index, dtype=object)
    if runs.empty:
        return reasons
    labels = pd.Series(
        [code_label(c, d) for c, d in zip(runs["commit"], runs["dirty"], strict=True)],
        index=runs.index,
    )
    order = runs.assign(_started=runs["started_at"].fillna("").astype(str)).sort_values(
        ["_started", "job_dir"], kind="stable"
    )
    newest = order.groupby("study", dropna=False, sort=False).tail(1)
    current = {study: labels[i] for study, i in zip(newest["study"], newest.index, strict=True)}
    for i, study in runs["study"].items():
        want = current[study]
        if labels[i] != want:
            reasons[i] = f"code {labels[i]}, newest runs {want}"
    return reasons
