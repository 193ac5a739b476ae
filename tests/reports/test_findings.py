"""The Findings section, pre-registered claims and results.csv (issue 15, part 5)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from reports import Baseline, MetricPivot, collect_runs, delta_cells, left_out_reasons
from reports.claims import claims_in_records, parse_claims
from reports.collect import load_records
from reports.findings import judge
from reports.results import write_records, write_results
from reports.stats import paired_delta
from tests.reports.reports_fixture import write_fixture

CLAIMS = [
    {"name": "small_gain", "text": "DropBlock helps at batch 64", "arm": "dropblock",
     "at": "batch=64"},
    {"name": "big_gain", "text": "DropBlock adds 15 points at batch 512", "arm": "dropblock",
     "at": "batch=512", "size": 15},
    {"name": "needs_large_batch", "text": "DropBlock helps more with the larger batch",
     "arm": "dropblock", "kind": "interaction"},
    {"name": "absent", "text": "Dropout helps", "arm": "dropout"},
]  # fmt: skip


def test_judge_gives_each_verdict():
    clear = paired_delta({0: 3.0, 1: 3.2, 2: 2.9}, {0: 1.0, 1: 1.1, 2: 1.0})
    assert judge(clear, 1).word == "supported"
    assert judge(clear, 1, sign=+1).word == "supported"
    # Clear, but in the opposite direction to the claim: the interval excludes the claimed +0.
    assert judge(clear, 1, sign=-1).word == "contradicted"
    # Clear and in the claimed direction, yet far below a claimed size? Still supported:
    # the effect exists; "contradicted" is for intervals that exclude the claim.
    assert judge(clear, 1, sign=+1, size=50).word == "supported"
    noisy = paired_delta({0: 3.0, 1: -2.0, 2: 5.0}, {0: 1.0, 1: 1.1, 2: 1.0})
    verdict = judge(noisy, 1, sign=+1, size=1)
    assert verdict.word == "inconclusive at n = 3"
    assert "smallest effect this design detects with 80% power is ±" in verdict.detail
    assert judge(noisy, 1, sign=+1, size=100).word == "contradicted"  # high < 100
    assert judge(paired_delta({0: 1.0}, {0: 2.0}), 1).word == "untested"
    flat = judge(paired_delta({0: 3.0, 1: 4.0}, {0: 1.0, 1: 2.0}), 1)  # the same +2 for each seed
    assert (flat.word, flat.detail) == (
        "untested",
        "no spread: every seed gives the same difference",
    )
    assert judge(None, 1).word == "untested"


def test_claims_are_checked_by_name_in_the_findings(tmp_path):
    study = write_fixture(tmp_path)
    out = write_results([study], out=tmp_path / "RESULTS.md", plots=False,
                        claims=parse_claims(CLAIMS))  # fmt: skip
    text = out.read_text()
    findings = text[text.index("## Findings") : text.index("\n## task=classify")]
    lines = {line.split('"')[0]: line for line in findings.splitlines() if line.startswith("- ")}
    assert lines["- **supported**: *small_gain* "].count("batch 64 (mini 16)") == 1
    assert "- **contradicted**: *big_gain* " in lines
    assert "the interval excludes the claimed +15" in lines["- **contradicted**: *big_gain* "]
    assert "- inconclusive at n = 3: *needs_large_batch* " in lines
    assert "- not found: *absent* " in lines
    # The claims come first, then the comparisons of each setting's first metric.
    assert findings.index("### Claims") < findings.index("### task=classify")


def test_bad_claims_name_the_key():
    with pytest.raises(ValueError, match=r"report.claims\[0\].direction must be increase or"):
        parse_claims([{"name": "x", "text": "t", "arm": "a", "direction": "up"}])
    with pytest.raises(ValueError, match=r"report.claims\[0\]: .*unexpected keyword.*'armm'"):
        parse_claims([{"name": "x", "text": "t", "armm": "a"}])


def test_claims_come_from_the_records_when_not_given(tmp_path):
    records = load_records([write_fixture(tmp_path)])
    first = records[0]
    config = {**first.config, "report": {"claims": CLAIMS[:1]}}
    records[0] = dataclasses.replace(first, config=config)
    assert [c.name for c in claims_in_records([r.config for r in records])] == ["small_gain"]
    out = write_records(records, out=tmp_path / "r" / "RESULTS.md",
                        options=None)  # fmt: skip
    assert "*small_gain*" in out.read_text()


def test_results_csv_holds_every_number_of_the_tables(tmp_path):
    study = write_fixture(tmp_path)
    write_results([study], out=tmp_path / "RESULTS.md", plots=False)
    table = pd.read_csv(tmp_path / "results.csv")
    assert set(table["kind"]) == {"cell", "delta", "interaction"}
    runs = collect_runs([study])
    used = runs[(left_out_reasons(runs) == "") & (runs["task"] == "classify")]
    cells = delta_cells(
        used, MetricPivot("regularizer", "batch", "top1"), Baseline("regularizer", "none")
    )
    deltas = table[(table["kind"] == "delta") & (table["metric"] == "top1")]
    assert len(deltas) == len(cells)
    for cell, (_, row) in zip(cells, deltas.iterrows(), strict=True):
        assert row["row"] == cell.row and row["test"] == "paired t" and row["n"] == 3
        assert (row["estimate"], row["p"], row["p_adjusted"]) == pytest.approx(
            (cell.delta.diff, cell.delta.p, cell.delta.p_adjusted)
        )
    none_64 = table[(table["kind"] == "cell") & (table["metric"] == "top1")
                    & (table["row"] == "none") & (table["column"] == "batch 64 (mini 16)")]  # fmt: skip
    values = used[(used["regularizer"] == "none") & (used["batch"] == 64)]["top1"]
    assert none_64["estimate"].item() == pytest.approx(values.mean())
    assert none_64["std"].item() == pytest.approx(values.std())
    verdicts = set(table.loc[table["kind"] != "cell", "verdict"])
    assert {"supported", "inconclusive at n = 3"} <= verdicts


def test_malformed_claims_in_a_record_are_skipped_not_fatal(tmp_path, caplog):
    # A run.json is untrusted input: bad claims in one record must not stop the study's report.
    hostile = [
        {"report": {"claims": "DropBlock helps"}},
        {"report": {"claims": [{"name": "x", "text": "t", "arm": "a", "direction": "up"}]}},
        {"report": 5},
        {"report": {"claims": [{"name": "ok", "text": "fine", "arm": "dropblock"}]}},
    ]
    assert [c.name for c in claims_in_records(hostile)] == ["ok"]
    assert sum("claims are skipped" in r.getMessage() for r in caplog.records) == 2
    records = load_records([write_fixture(tmp_path)])
    records[0] = dataclasses.replace(
        records[0], config={**records[0].config, "report": {"claims": [{"bogus": 1}]}}
    )
    out = write_records(records, out=tmp_path / "r" / "RESULTS.md")
    assert "## Findings" in out.read_text() and "### Claims" not in out.read_text()


def test_rounding_noise_is_no_spread_not_a_finding():
    """34.0 - 37.2 and 31.6 - 34.8 differ in the 15th digit: a paired t on them would give an
    infinite t and p = 0 (a 'supported' effect from two seeds); it is no spread instead."""
    from reports.interaction import interaction
    from reports.stats import compare, welch_delta

    arm, base = {0: 34.0, 1: 31.6}, {0: 37.2, 1: 34.8}
    assert (arm[0] - base[0]) != (arm[1] - base[1])  # the rounding is really there
    delta = compare(arm, base)
    assert delta.test == "paired t" and delta.diff == pytest.approx(-3.2)
    assert delta.low is None and delta.p is None
    verdict = judge(delta, 1)
    assert verdict.word == "untested" and "no spread" in verdict.detail
    assert welch_delta([0.1 + 0.2, 0.3], [0.3, 0.3]).p is None
    assert interaction(arm, base, {0: 30.0, 1: 30.0}, {0: 30.0, 1: 30.0}).p is None
    # a real spread keeps its interval
    assert compare({0: 34.0, 1: 31.2}, base).low is not None
