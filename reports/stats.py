"""One arm against its baseline: the difference of means, its interval, p-value and effect size.

Two tests, chosen by the data (:func:`compare`):

- **Paired t** when the arms share seeds (same seed = same initialisation and data order, which
  the harness guarantees): the per-seed differences ``d_s = a_s - b_s`` over the shared seeds,

      d̄ = mean(d),  se = s_d / sqrt(n),  CI = d̄ ± t_{1-α/2, n-1} · se,  p = 2 · P(T_{n-1} > |d̄|/se)

  which is ``scipy.stats.ttest_rel(a, b)`` and its ``confidence_interval``. Effect size: Cohen's
  ``d_z = d̄ / s_d``.
- **Welch's t** otherwise (Welch, Biometrika 34, 1947): ``d = mean(a) - mean(b)``,
  ``se = sqrt(s_a²/n_a + s_b²/n_b)``, Welch-Satterthwaite degrees of freedom; this is
  ``scipy.stats.ttest_ind(a, b, equal_var=False)``. Effect size: Cohen's ``d = d / s_pooled``
  with ``s_pooled = sqrt((s_a² + s_b²) / 2)``.

Each side needs at least two runs (two shared seeds for the paired test); with fewer, or with a
zero standard error, there is no interval (``None``): a t interval from one seed is not an
interval. No bootstrap: with the 2-5 seeds an ablation affords, a bootstrap's interval is too
narrow. tests/reports/test_reports_stats.py and test_paired_and_interactions.py check every number against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from scipy import special

__all__ = [
    "PAIRED",
    "WELCH",
    "Delta",
    "compare",
    "no_spread",
    "one_sample_delta",
    "paired_delta",
    "shared_seeds",
    "t_delta",
    "welch_delta",
]

#: The test names a :class:`Delta` carries (and RESULTS.md and results.csv print).
PAIRED, WELCH = "paired t", "Welch t"


@dataclass(frozen=True)
class Delta:
    """An estimated difference (arm minus baseline, or a difference of differences).

    ``low``/``high``/``p``/``df`` are ``None`` when there is no interval. ``p_adjusted`` is set
    by :func:`reports.multiplicity.holm` within a family of comparisons; ``n`` counts the runs of
    the arm (the shared seeds when paired), ``n_baseline`` those of the baseline.
    """

    diff: float
    n: int
    n_baseline: int
    low: float | None = None
    high: float | None = None
    p: float | None = None
    df: float | None = None
    confidence: float = 0.95
    test: str = WELCH
    #: Standard error of ``diff`` (the minimum detectable effect scales with it).
    se: float | None = None
    #: Cohen's d (``d_z`` for a paired test); None without a spread.
    effect_size: float | None = None
    p_adjusted: float | None = None

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (False when there is no interval)."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0

    @property
    def survives(self) -> bool:
        """Whether the comparison is significant after the family's adjustment (Holm).

        Without an adjusted p (a comparison that was never adjusted) it is :attr:`significant`.
        """
        if self.p_adjusted is None:
            return self.significant
        return self.p_adjusted < self.alpha

    def adjusted(self, p_adjusted: float) -> Delta:
        return replace(self, p_adjusted=p_adjusted)


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def t_delta(diff: float, se: float, df: float, confidence: float) -> dict[str, float]:
    """The Student-t interval and two-sided p of an estimate with standard error ``se``.

    ``scipy.special.stdtrit``/``stdtr`` are what ``scipy.stats.t`` calls, without its import.
    """
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se
    p = float(2 * special.stdtr(df, -abs(diff) / se))
    return {"low": diff - half, "high": diff + half, "p": p, "df": df, "se": se}


#: A spread this small relative to the values is rounding, not spread: differences of
#: percentages such as 34.0 - 37.2 and 31.6 - 34.8 differ in the 15th digit.
SPREAD_TOLERANCE = 1e-9


def no_spread(spread: float, values: Sequence[float]) -> bool:
    """Whether a standard deviation (or error) of ``values`` is zero up to float rounding; a
    t-test on such values would report an infinite t and p = 0 from rounding noise alone."""
    scale = max([1.0, *(abs(v) for v in values)])
    return spread <= SPREAD_TOLERANCE * scale


def _variance(xs: Sequence[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def welch_delta(
    values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> Delta | None:
    """Welch's t for ``mean(values) - mean(baseline)`` (formulas in the module docstring).

    Returns ``None`` when either side has no value (NaN values are dropped); the interval is
    ``None`` when a side has fewer than two values or the standard error is zero.
    """
    _check_confidence(confidence)
    a, b = _clean(values), _clean(baseline)
    if not a or not b:
        return None
    na, nb = len(a), len(b)
    diff = sum(a) / na - sum(b) / nb
    base = Delta(diff=diff, n=na, n_baseline=nb, confidence=confidence, test=WELCH)
    if na < 2 or nb < 2:
        return base
    var_a, var_b = _variance(a), _variance(b)
    qa, qb = var_a / na, var_b / nb
    se = math.sqrt(qa + qb)
    if no_spread(se, a + b):
        return base
    df = (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))
    pooled = math.sqrt((var_a + var_b) / 2)
    return replace(base, **t_delta(diff, se, df, confidence), effect_size=diff / pooled)


def one_sample_delta(
    differences: Sequence[float], confidence: float, n_baseline: int | None = None
) -> Delta | None:
    """The mean of per-seed differences with its paired-t interval (``ttest_1samp(d, 0)``)."""
    d = _clean(differences)
    if not d:
        return None
    n = len(d)
    diff = sum(d) / n
    base = Delta(
        diff=diff, n=n, n_baseline=n if n_baseline is None else n_baseline,
        confidence=confidence, test=PAIRED,
    )  # fmt: skip
    if n < 2:
        return base
    sd = math.sqrt(_variance(d))
    if no_spread(sd, d):
        return base
    return replace(
        base, **t_delta(diff, sd / math.sqrt(n), n - 1, confidence), effect_size=diff / sd
    )


def shared_seeds(*arms: Mapping[int, float]) -> list[int]:
    """The seeds every arm ran with a finite value, in order."""
    common = set.intersection(*(set(arm) for arm in arms))
    return sorted(s for s in common if len(_clean([arm[s] for arm in arms])) == len(arms))


def paired_delta(
    values: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95
) -> Delta | None:
    """The paired t over the seeds both arms ran (``seed -> metric``); None without one."""
    _check_confidence(confidence)
    return one_sample_delta(
        [values[s] - baseline[s] for s in shared_seeds(values, baseline)], confidence
    )


def compare(
    values: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95
) -> Delta | None:
    """Paired t when at least two seeds are shared, Welch's t otherwise (module docstring).

    Seeds that only one arm ran are left out of a paired test; the delta's ``n`` says how many
    pairs it used.
    """
    paired = paired_delta(values, baseline, confidence)
    if paired is not None and paired.n >= 2:
        return paired
    return welch_delta(list(values.values()), list(baseline.values()), confidence)
