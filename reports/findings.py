"""The Findings that open RESULTS.md: each comparison judged in words, claims checked by name.

Verdicts (:func:`judge`), for a comparison whose family (its table) was Holm-adjusted:

- **supported**: the adjusted p is below α (the interval excludes 0 after adjustment) and, for a
  claim, the difference has the claimed sign;
- **contradicted** (claims only): the interval excludes the claimed effect
  (``direction · size``), on the side opposite the claim;
- **inconclusive at n = k**: neither; the line gives the smallest effect the design detects
  with 80% power at the family's level (:mod:`reports.power`), so a reader sees whether more
  seeds could settle it;
- **untested**: a side has fewer than two runs, so there is no interval.

Claims are pre-registered in the study's config (``report.claims``, docs/REPORTS.md): a name,
the claim in words, ``kind`` (``effect``: arm minus baseline; ``interaction``: its change
between two levels), the ``arm``, the ``metric``, ``direction`` (``increase``/``decrease``),
``size`` in metric points (0: any) and, optionally, ``at`` (``mini_batch=64``) to pick a level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reports.analysis import MetricAnalysis, family_size
from reports.claims import Claim
from reports.deltas import Baseline
from reports.interaction_table import level_pair_label
from reports.power import minimum_detectable_effect
from reports.stats import Delta
from reports.tables import cell_groups, column_label, column_values, level_matches, row_order
from reports.tasks import metric_view

__all__ = ["Verdict", "claim_lines", "findings_section", "judge"]


@dataclass(frozen=True)
class Verdict:
    """``word`` (supported, contradicted, inconclusive, untested) and the sentence after it."""

    word: str
    detail: str = ""


def judge(delta: Delta | None, family_size: int, sign: int = 0, size: float = 0.0) -> Verdict:
    """The verdict of one comparison (module docstring); ``sign`` 0: no claimed direction."""
    if delta is None or delta.low is None or delta.high is None:
        if delta is not None and min(delta.n, delta.n_baseline) >= 2:
            return Verdict("untested", "no spread: every seed gives the same difference")
        return Verdict("untested", "a side has fewer than two runs")
    if delta.survives and (sign == 0 or (delta.diff > 0) == (sign > 0)):
        return Verdict("supported")
    claimed = sign * size
    if (sign > 0 and delta.high < claimed) or (sign < 0 and delta.low > claimed):
        return Verdict("contradicted", f"the interval excludes the claimed {claimed:+g}")
    mde = minimum_detectable_effect(delta, family_size)
    detail = (
        ""
        if mde is None
        else f"the smallest effect this design detects with 80% power is ±{mde:.1f} points"
    )
    return Verdict(f"inconclusive at n = {delta.n}", detail)


def _numbers(delta: Delta, digits: int) -> str:
    p_adj = delta.p_adjusted if delta.p_adjusted is not None else delta.p
    return (
        f"{delta.diff:+.{digits}f} [{delta.low:+.{digits}f}, {delta.high:+.{digits}f}] "
        f"({delta.test}, n = {delta.n}, p_adj = {p_adj:.3f})"
    )


def _line(verdict: Verdict, subject: str, delta: Delta | None, digits: int) -> str:
    word = f"**{verdict.word}**" if verdict.word in ("supported", "contradicted") else verdict.word
    numbers = "" if delta is None or delta.low is None else f": {_numbers(delta, digits)}"
    detail = f"; {verdict.detail}" if verdict.detail else ""
    return f"- {word}: {subject}{numbers}{detail}."


def _arm_and_level(cell: Any, base: Baseline, rows: str) -> tuple[object, object]:
    """A delta cell's (arm, level) whichever pivot key the baseline is on."""
    return (cell.row, cell.column) if base.key == rows else (cell.column, cell.row)


def _effect_lines(analysis: MetricAnalysis, base: Baseline, rows: str, columns: str) -> list:
    digits = metric_view(analysis.metric).digits
    level_key = columns if base.key == rows else rows
    lines = []
    family = analysis.delta_family
    for cell in analysis.deltas:
        arm, level = _arm_and_level(cell, base, rows)
        subject = f"{arm} vs {base.value} at {column_label(level_key, level)}"
        lines.append(_line(judge(cell.delta, family), subject, cell.delta, digits))
    family = analysis.interaction_family
    for cell in analysis.interactions:
        pair = level_pair_label(level_key, cell.low, cell.high)
        subject = f"interaction of {cell.arm} with {pair}"
        lines.append(_line(judge(cell.delta, family), subject, cell.delta, digits))
    return lines


def _claim_cells(claim: Claim, analysis: MetricAnalysis, base: Baseline, rows: str, columns: str):
    """(cell, where) for each comparison of ``analysis`` the claim names."""
    level_key = columns if base.key == rows else rows
    if claim.kind == "interaction":
        for cell in analysis.interactions:
            if str(cell.arm) == claim.arm:
                yield cell, level_pair_label(level_key, cell.low, cell.high)
        return
    for cell in analysis.deltas:
        arm, level = _arm_and_level(cell, base, rows)
        if str(arm) == claim.arm and level_matches(claim.at, level_key, level):
            yield cell, column_label(level_key, level)


def claim_lines(
    claims: Sequence[Claim],
    analyses: Sequence[MetricAnalysis],
    base: Baseline,
    pivot_keys: tuple[str, str],
) -> list[str]:
    """One line per claim and comparison it names (``not found`` when the runs have none)."""
    rows, columns = pivot_keys
    lines = []
    for claim in claims:
        head = f'*{claim.name}* "{claim.text}"'
        before = len(lines)
        for analysis in (a for a in analyses if a.metric == claim.metric):
            cells = analysis.deltas if claim.kind == "effect" else analysis.interactions
            for cell, where in _claim_cells(claim, analysis, base, rows, columns):
                verdict = judge(cell.delta, family_size(cells), claim.sign, claim.size)
                subject = f"{head}, {analysis.described}, {where}"
                lines.append(_line(verdict, subject, cell.delta, metric_view(claim.metric).digits))
        if len(lines) == before:
            lines.append(
                f"- not found: {head}: no {claim.kind} of {claim.arm} on {claim.metric} here."
            )
    return lines


def findings_section(
    analyses: Sequence[MetricAnalysis],
    base: Baseline | None,
    pivot_keys: tuple[str, str],
    claims: Sequence[Claim] = (),
) -> list[str]:
    """``## Findings``: the claims first, then each setting's first metric, comparison by
    comparison; ``[]`` without a baseline."""
    if base is None or not analyses:
        return []
    alpha = next((c.delta.alpha for a in analyses for c in a.deltas if c.delta is not None), 0.05)
    lines = [
        "## Findings",
        "",
        f"Each line is one comparison from the tables below. **supported**: the difference is "
        f"clear after Holm's adjustment within its table (α = {alpha:g}); **contradicted**: the "
        "interval rules out the claimed effect; *inconclusive at n = k*: the seeds so far cannot "
        "tell, and the line says how large an effect they could detect. Numbers: difference in "
        "metric points [95% interval].",
        "",
    ]
    if claims:
        lines += ["### Claims (pre-registered in the study's config)", ""]
        lines += [*claim_lines(claims, analyses, base, pivot_keys), ""]
    shown: set[tuple] = set()
    for analysis in analyses:
        if analysis.setting in shown:
            continue  # the setting's first metric only; the tables have the rest
        shown.add(analysis.setting)
        title = metric_view(analysis.metric).title
        lines += [f"### {analysis.described}: {title}", ""]
        lines += [*_gap_lines(analyses, analysis.setting, base, *pivot_keys)]
        lines += [*_effect_lines(analysis, base, *pivot_keys), ""]
    return lines


def _gap_lines(
    analyses: Sequence[MetricAnalysis], setting: tuple, base: Baseline, rows: str, columns: str
) -> list[str]:
    """The baseline's generalization gap per level, when the runs scored training images: how
    much room a regularizer has in this setting."""
    gap = next((a for a in analyses if a.setting == setting and a.metric == "gap_top1"), None)
    if gap is None:
        return []
    level_key = columns if base.key == rows else rows
    cells = cell_groups(gap.runs, rows, columns, ["gap_top1"])
    baseline = {
        (level if base.key == rows else row): group["gap_top1"].astype(float).dropna()
        for (row, level), group in cells.items()
        if base.matches(row if base.key == rows else level)
    }
    runs = gap.runs
    order = (
        column_values(runs, columns)
        if base.key == rows
        else row_order(list(runs[rows].dropna().unique()))
    )
    parts = [
        f"{baseline[level].mean():.1f} points at {column_label(level_key, level)}"
        for level in order
        if level in baseline and len(baseline[level])
    ]
    if not parts:
        return []
    return [
        f"- Room to regularize: {base.value}'s Top-1 on its training images minus its "
        f"validation Top-1 (the generalization gap, mean over seeds) is {'; '.join(parts)}. A "
        "regularizer can only help where this gap is large.",
    ]
