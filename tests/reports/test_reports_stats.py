"""Welch's t deltas: equal to scipy.stats and to a hand computation, on the fixture study."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from reports import (
    Baseline,
    MetricPivot,
    collect_runs,
    delta_cells,
    left_out_reasons,
    welch_delta,
)
from reports.deltas import family_note, format_delta
from tests.reports.reports_fixture import CLASSIFY, write_fixture


def _scipy(a, b, confidence=0.95):
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(confidence)
    return result.pvalue, ci.low, ci.high, result.df


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(
    "a,b",
    [
        ([73.2, 74.0, 73.1], [70.0, 71.5, 70.9]),  # the fixture's significant cell
        ([62.5, 60.1, 64.9], [61.0, 63.4, 60.2]),  # and its inconclusive one
        ([1.0, 2.0], [3.0, 5.0, 4.0, 9.0, 1.5]),  # unequal n and variances
    ],
)
def test_welch_delta_equals_scipy(a, b, confidence):
    delta = welch_delta(a, b, confidence)
    p, low, high, df = _scipy(a, b, confidence)
    assert delta.diff == pytest.approx(sum(a) / len(a) - sum(b) / len(b), rel=1e-12)
    assert delta.p == pytest.approx(p, rel=1e-9)
    assert delta.low == pytest.approx(low, rel=1e-9)
    assert delta.high == pytest.approx(high, rel=1e-9)
    assert delta.df == pytest.approx(df, rel=1e-9)
    assert delta.significant == (low > 0 or high < 0)


def test_welch_delta_by_hand():
    # Welch-Satterthwaite by hand for a = [1, 2, 3], b = [2, 4]:
    # s_a² = 1, s_b² = 2; q_a = 1/3, q_b = 1; se = sqrt(4/3); df = (4/3)² / ((1/3)²/2 + 1²/1) = 32/19.
    delta = welch_delta([1.0, 2.0, 3.0], [2.0, 4.0])
    se, df = math.sqrt(4 / 3), 32 / 19
    half = stats.t.ppf(0.975, df) * se
    assert delta.df == pytest.approx(df)
    assert (delta.low, delta.high) == pytest.approx((-1 - half, -1 + half))
    assert delta.p == pytest.approx(2 * stats.t.sf(1 / se, df))


def test_too_few_runs_give_no_interval():
    one = welch_delta([70.0], [60.0, 61.0])
    assert one.diff == pytest.approx(9.5) and one.low is None and one.p is None
    assert not one.significant
    assert format_delta(one) == "+9.5 (n=1 vs 2, no CI)"
    flat = welch_delta([1.0, 1.0], [1.0, 1.0])  # zero standard error: no interval either
    assert flat.low is None and format_delta(flat) == "±0.0 (n=2 vs 2, no CI)"
    assert welch_delta([math.nan], [1.0, 2.0]) is None
    with pytest.raises(ValueError, match="confidence must be between 0 and 1, got 95"):
        welch_delta([1.0, 2.0], [1.0, 3.0], 95)


def test_fixture_deltas_are_paired_and_equal_scipy(tmp_path):
    # The fixture's arms share seeds 0-2: each delta is scipy's paired t, Holm-adjusted over the
    # table's two comparisons (issue 15).
    runs = collect_runs([write_fixture(tmp_path)])
    used = runs[(left_out_reasons(runs) == "") & (runs["task"] == "classify")]
    cells = delta_cells(
        used, MetricPivot("regularizer", "batch", "top1"), Baseline("regularizer", "none")
    )
    assert [(c.row, c.column) for c in cells] == [("dropblock", (64, 16)), ("dropblock", (512, 16))]
    raw_p = []
    for cell in cells:
        batch = cell.column[0]
        arm = [CLASSIFY[("dropblock", batch, seed)] for seed in range(3)]
        base = [CLASSIFY[("none", batch, seed)] for seed in range(3)]
        result = stats.ttest_rel(arm, base)
        ci = result.confidence_interval()
        assert cell.delta.test == "paired t" and cell.delta.n == 3
        assert (cell.delta.p, cell.delta.low, cell.delta.high) == pytest.approx(
            (result.pvalue, ci.low, ci.high)
        )
        raw_p.append(result.pvalue)
    adjusted = [min(1.0, 2 * min(raw_p)), max(min(1.0, 2 * min(raw_p)), max(raw_p))]
    by_size = sorted(range(2), key=lambda i: raw_p[i])
    for rank, i in enumerate(by_size):
        assert cells[i].delta.p_adjusted == pytest.approx(adjusted[rank])
        text = format_delta(cells[i].delta)
        assert text.startswith("**") == (adjusted[rank] < 0.05)


def test_an_unpaired_study_falls_back_to_welch_and_says_so(tmp_path):
    runs = collect_runs([write_fixture(tmp_path)])
    used = runs[(left_out_reasons(runs) == "") & (runs["task"] == "classify")].copy()
    used.loc[used["regularizer"] == "dropblock", "seed"] += 100  # no seed shared any more
    pivot = MetricPivot("regularizer", "batch", "top1")
    cells = delta_cells(used, pivot, Baseline("regularizer", "none"))
    for cell in cells:
        batch = cell.column[0]
        arm = [v for (r, b, _), v in CLASSIFY.items() if (r, b) == ("dropblock", batch)]
        base = [v for (r, b, _), v in CLASSIFY.items() if (r, b) == ("none", batch)]
        p, low, high, _df = _scipy(arm, base)
        assert cell.delta.test == "Welch t"
        assert (cell.delta.p, cell.delta.low, cell.delta.high) == pytest.approx((p, low, high))
    note = family_note([c.delta for c in cells], "Differences")
    assert "Welch t (the sides share fewer than two seeds)" in note and "2 comparisons" in note
