"""Difference of two arms' means with Welch's t: the interval and p-value of the delta tables.

Welch, "The generalization of Student's problem when several different population variances are
involved", Biometrika 34 (1947). For samples a (the arm) and b (the baseline):

    d  = mean(a) - mean(b)
    se = sqrt(s_a² / n_a + s_b² / n_b)                (s² the sample variance, ddof=1)
    ν  = se⁴ / ((s_a²/n_a)² / (n_a-1) + (s_b²/n_b)² / (n_b-1))    (Welch-Satterthwaite)
    CI = d ± t_{1-α/2, ν} · se,   p = 2 · P(T_ν > |d| / se)

This equals ``scipy.stats.ttest_ind(a, b, equal_var=False)`` and its ``confidence_interval``
(tests/reports/test_reports_stats.py checks that). Each arm needs at least two runs; with
fewer, or with both variances zero, there is no interval (``None``), because a t interval from
one seed is not an interval. No bootstrap: with the 2-5 seeds an ablation affords, a bootstrap resamples a
handful of values and its interval is too narrow; Welch's wide interval is the honest one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

__all__ = ["Delta", "welch_delta"]


@dataclass(frozen=True)
class Delta:
    """An arm minus its baseline: the difference of means, its CI and Welch's two-sided p."""

    diff: float
    n: int
    n_baseline: int
    low: float | None = None
    high: float | None = None
    p: float | None = None
    df: float | None = None
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (False when there is no interval)."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def welch_delta(
    values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> Delta | None:
    """Welch's t for ``mean(values) - mean(baseline)`` (formulas in the module docstring).

    Args:
        values: the arm's metric, one value per run (NaN values are dropped).
        baseline: the baseline arm's metric, one value per run.
        confidence: the interval's coverage, in (0, 1).

    Returns:
        ``None`` when either side has no value; otherwise a :class:`Delta`, whose ``low``,
        ``high``, ``p`` and ``df`` are ``None`` when a side has fewer than two values or the
        standard error is zero.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    a, b = _clean(values), _clean(baseline)
    if not a or not b:
        return None
    na, nb = len(a), len(b)
    mean_a, mean_b = sum(a) / na, sum(b) / nb
    diff = mean_a - mean_b
    if na < 2 or nb < 2:
        return Delta(diff=diff, n=na, n_baseline=nb, confidence=confidence)
    var_a = sum((x - mean_a) ** 2 for x in a) / (na - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (nb - 1)
    qa, qb = var_a / na, var_b / nb
    se = math.sqrt(qa + qb)
    if se == 0:
        return Delta(diff=diff, n=na, n_baseline=nb, confidence=confidence)
    df = (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))
    # Student's t quantile and tail from scipy.special (what scipy.stats.t calls, without its import).
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se
    p = float(2 * special.stdtr(df, -abs(diff) / se))
    return Delta(
        diff=diff,
        n=na,
        n_baseline=nb,
        low=diff - half,
        high=diff + half,
        p=p,
        df=df,
        confidence=confidence,
    )
