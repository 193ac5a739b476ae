"""The smallest effect a design detects: the minimum detectable effect (MDE) at 80% power.

For a comparison with standard error ``se`` on ``ν`` degrees of freedom, tested two-sided at
level α, the effect detected with probability ``1 - β`` solves the noncentral-t power equation;
``statsmodels.stats.power.TTestPower`` solves it for a one-sample (paired) t in units of the
spread (Cohen's d), so with ``n`` pairs

    MDE = d*(n, α, 1 - β) · se · sqrt(n)        (se · sqrt(n) = s_d, the spread of the pairs)

For a Welch comparison the same solve with ``ν + 1`` "pairs" is used: the normal-theory
``(t_{1-α/2,ν} + t_{1-β,ν}) · se`` it approximates differs by under 3% at ν >= 4.
α is the family's: ``α / m`` (Holm's first step, its strictest), so an effect of the MDE would be
found "supported" after adjustment with 80% probability.
"""

from __future__ import annotations

import math

from reports.stats import Delta

__all__ = ["minimum_detectable_effect"]

#: The power the Findings quote the minimum detectable effect at.
POWER = 0.8


def minimum_detectable_effect(
    delta: Delta, family_size: int = 1, power: float = POWER
) -> float | None:
    """The effect (in the metric's points) found with probability ``power``; None without a spread."""
    from statsmodels.stats.power import TTestPower

    if delta.se is None or delta.df is None or delta.se == 0:
        return None
    alpha = delta.alpha / max(1, family_size)
    nobs = delta.df + 1
    d = TTestPower().solve_power(nobs=nobs, alpha=alpha, power=power, alternative="two-sided")
    return float(d) * delta.se * math.sqrt(nobs)
