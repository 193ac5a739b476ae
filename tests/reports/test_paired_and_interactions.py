"""Paired deltas, Holm's adjustment, interactions and minimum detectable effects (issue 15),
each equal to scipy / statsmodels and to a hand computation."""

from __future__ import annotations

import math

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from reports.interaction import interaction
from reports.multiplicity import holm
from reports.power import minimum_detectable_effect
from reports.stats import PAIRED, WELCH, compare, paired_delta, welch_delta

ARM = {0: 73.2, 1: 74.0, 2: 73.1, 3: 72.4}
BASE = {0: 70.0, 1: 71.5, 2: 70.9, 3: 71.0}


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_delta_equals_ttest_rel(confidence):
    delta = paired_delta(ARM, BASE, confidence)
    result = stats.ttest_rel(list(ARM.values()), list(BASE.values()))
    ci = result.confidence_interval(confidence)
    assert delta.test == PAIRED and delta.n == 4 and delta.df == 3
    assert delta.p == pytest.approx(result.pvalue, rel=1e-9)
    assert (delta.low, delta.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    differences = [ARM[s] - BASE[s] for s in ARM]
    sd = stats.tstd(differences)
    assert delta.effect_size == pytest.approx(sum(differences) / 4 / sd)  # Cohen's d_z


def test_pairing_uses_only_the_shared_seeds():
    arm = {**ARM, 7: 90.0}  # a seed the baseline never ran
    delta = paired_delta(arm, BASE)
    assert delta.n == 4 and delta.diff == pytest.approx(paired_delta(ARM, BASE).diff)


def test_compare_falls_back_to_welch_without_shared_seeds():
    shifted = {seed + 10: value for seed, value in ARM.items()}
    delta = compare(shifted, BASE)
    assert delta.test == WELCH
    welch = stats.ttest_ind(list(ARM.values()), list(BASE.values()), equal_var=False)
    assert delta.p == pytest.approx(welch.pvalue, rel=1e-9)
    one_shared = {0: 73.2, 11: 74.0, 12: 73.1}
    assert compare(one_shared, BASE).test == WELCH  # one pair is not a paired test
    assert compare(ARM, BASE).test == PAIRED


def test_pairing_gains_power_when_seeds_move_both_arms():
    # Seed effects of +-3 points shared by both arms hide a +1 point effect from Welch's test.
    seed_effect = {0: -3.0, 1: 3.0, 2: -1.5, 3: 1.5}
    noise = {0: 0.1, 1: -0.1, 2: 0.05, 3: -0.05}
    base = {s: 70 + e for s, e in seed_effect.items()}
    arm = {s: 71 + e + noise[s] for s, e in seed_effect.items()}
    assert compare(arm, base).survives
    assert not welch_delta(list(arm.values()), list(base.values())).significant


def test_welch_effect_size_is_cohens_d_with_the_average_variance():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0]
    delta = welch_delta(a, b)
    assert delta.effect_size == pytest.approx(-1 / math.sqrt((1 + 2) / 2))


def test_holm_equals_multipletests_and_a_hand_computation():
    deltas = [welch_delta(a, b) for a, b in [
        ([5.0, 6.0, 5.5], [1.0, 1.2, 0.8]),
        ([2.0, 3.5, 2.2], [1.0, 1.2, 0.8]),
        ([1.1, 0.7, 1.3], [1.0, 1.2, 0.8]),
        ([9.0], [1.0, 1.2, 0.8]),  # no p-value: not part of the family
    ]]  # fmt: skip
    adjusted = holm(deltas)
    ps = [d.p for d in deltas[:3]]
    expected = multipletests(ps, method="holm")[1]
    assert [d.p_adjusted for d in adjusted[:3]] == pytest.approx(list(expected))
    assert adjusted[3].p_adjusted is None
    # By hand: sorted p's times (m - rank), running maximum, capped at 1.
    order = sorted(range(3), key=lambda i: ps[i])
    running, by_hand = 0.0, [0.0] * 3
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * ps[i]))
        by_hand[i] = running
    assert [d.p_adjusted for d in adjusted[:3]] == pytest.approx(by_hand)
    assert [d.survives for d in adjusted[:3]] == [p < 0.05 for p in by_hand]


def test_interaction_recovers_a_known_difference_of_differences():
    # Cell means: none 60 / 70 (small / large mini-batch), DropBlock +0 at small and +2 at
    # large: the true interaction is +2. Seed effects (shared by all cells) cancel exactly; a
    # per-seed noise that sums to zero leaves the estimate exactly +2.
    seed_effect = {0: -2.0, 1: 1.0, 2: 1.0}
    noise = {0: 0.3, 1: -0.1, 2: -0.2}
    base_low = {s: 60 + e for s, e in seed_effect.items()}
    arm_low = {s: 60 + e for s, e in seed_effect.items()}
    base_high = {s: 70 + e for s, e in seed_effect.items()}
    arm_high = {s: 72 + e + noise[s] for s, e in seed_effect.items()}
    delta = interaction(arm_high, base_high, arm_low, base_low)
    assert delta.test == PAIRED and delta.diff == pytest.approx(2.0)
    expected = stats.ttest_1samp([2 + noise[s] for s in noise], 0.0)
    ci = expected.confidence_interval(0.95)
    assert delta.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert (delta.low, delta.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_unpaired_interaction_combines_the_four_cell_variances():
    cells = [[72.0, 73.0], [70.0, 70.5, 71.5], [60.0, 61.0, 62.0], [60.0, 60.0, 61.0, 63.0]]
    as_seeds = [{i * 10 + j: v for j, v in enumerate(cell)} for i, cell in enumerate(cells)]
    delta = interaction(*as_seeds)
    means = [sum(c) / len(c) for c in cells]
    q = [stats.tvar(c) / len(c) for c in cells]
    se = math.sqrt(sum(q))
    df = sum(q) ** 2 / sum(qi**2 / (len(c) - 1) for qi, c in zip(q, cells, strict=True))
    diff = (means[0] - means[1]) - (means[2] - means[3])
    half = stats.t.ppf(0.975, df) * se
    assert delta.test == WELCH and delta.diff == pytest.approx(diff)
    assert (delta.low, delta.high, delta.df) == pytest.approx((diff - half, diff + half, df))
    assert delta.p == pytest.approx(2 * stats.t.sf(abs(diff) / se, df))
    assert interaction({}, *as_seeds[1:]) is None


@pytest.mark.parametrize("family_size", [1, 4])
def test_minimum_detectable_effect_has_the_stated_power(family_size):
    delta = paired_delta(ARM, BASE)
    mde = minimum_detectable_effect(delta, family_size)
    sd = delta.se * math.sqrt(delta.n)
    power = TTestPower().power(mde / sd, nobs=delta.n, alpha=0.05 / family_size)
    assert power == pytest.approx(0.8, abs=1e-6)
    # Against the normal-theory shortcut (t quantiles): close, slightly larger at small n.
    shortcut = (stats.t.ppf(1 - 0.025 / family_size, 3) + stats.t.ppf(0.8, 3)) * delta.se
    assert shortcut < mde < 1.1 * shortcut
    assert minimum_detectable_effect(welch_delta([1.0], [2.0, 3.0])) is None
