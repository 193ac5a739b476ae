"""Interaction: does a regularizer's effect depend on the mini-batch? A difference of differences.

For a regularizer r, its baseline b and two levels of the mini-batch (or batch), low and high:

    I = (r - b)_high - (r - b)_low

the number the Darknet thread argued about (DropBlock should help only when BatchNorm sees a
large mini-batch). When the four cells share seeds (the harness gives a seed the same
initialisation and data order in every arm), each shared seed gives one
``I_s = (r_s - b_s)_high - (r_s - b_s)_low`` and the interval is the one-sample t of the ``I_s``
(``scipy.stats.ttest_1samp(I, 0)``). Otherwise the cell means combine with

    se² = Σ_i s_i² / n_i,   ν = se⁴ / Σ_i (s_i²/n_i)² / (n_i - 1)

over the four cells (Welch-Satterthwaite for a linear contrast), each cell needing two runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from reports.stats import (
    WELCH,
    Delta,
    _clean,
    _variance,
    no_spread,
    one_sample_delta,
    shared_seeds,
    t_delta,
)

__all__ = ["interaction"]

Arm = Mapping[int, float]


def interaction(
    arm_high: Arm, base_high: Arm, arm_low: Arm, base_low: Arm, confidence: float = 0.95
) -> Delta | None:
    """``(arm - base)`` at the high level minus at the low level; ``seed -> metric`` per cell.

    Paired over the seeds all four cells ran when there are at least two, else the Welch
    combination of the module docstring. ``None`` when a cell is empty.
    """
    cells = (arm_high, base_high, arm_low, base_low)
    seeds = shared_seeds(*cells)
    if len(seeds) >= 2:
        per_seed = [(arm_high[s] - base_high[s]) - (arm_low[s] - base_low[s]) for s in seeds]
        return one_sample_delta(per_seed, confidence)
    values = [_clean(list(cell.values())) for cell in cells]
    if not all(values):
        return None
    means = [sum(v) / len(v) for v in values]
    diff = (means[0] - means[1]) - (means[2] - means[3])
    n = min(len(values[0]), len(values[2]))
    n_base = min(len(values[1]), len(values[3]))
    base = Delta(diff=diff, n=n, n_baseline=n_base, confidence=confidence, test=WELCH)
    if min(len(v) for v in values) < 2:
        return base
    q = [_variance(v) / len(v) for v in values]
    se = math.sqrt(sum(q))
    if no_spread(se, [v for cell in values for v in cell]):
        return base
    df = sum(q) ** 2 / sum(qi**2 / (len(v) - 1) for qi, v in zip(q, values, strict=True))
    return replace(base, **t_delta(diff, se, df, confidence))
