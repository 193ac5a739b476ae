"""``report.published``: numbers of another budget beside ours in RESULTS.md and results.csv, and
the one clear error a malformed entry gets (reports/published.py, docs/REPORTS.md)."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from reports import ReportOptions, write_records, write_results
from reports.collect import load_records
from reports.published import parse_published, published_in_records
from tests.reports.reports_fixture import CLASSIFY, write_fixture

ENTRIES = [
    {"row": "dropblock", "column": "batch=512", "metric": "top1", "value": 77.9,
     "source": "CSPNet README", "budget": "ImageNet, 80 epochs"},
    {"row": "none", "metric": "top5", "value": 94.0, "source": "CSP | table", "budget": "ImageNet"},
    {"row": "cbn", "metric": "top1", "value": 78.1, "source": "CSP issue 6", "budget": "ImageNet"},
]  # fmt: skip


@pytest.fixture
def report(tmp_path):
    study = write_fixture(tmp_path / "study")
    options = ReportOptions(plots=False, published=parse_published(ENTRIES))
    out = write_records(
        load_records([study], epochs=False), out=study / "RESULTS.md", options=options
    )
    return out.read_text(), pd.read_csv(out.with_name("results.csv"))


def _row(table: str, *cells: str) -> str:
    lines = [line for line in table.splitlines() if all(c in line for c in cells)]
    assert len(lines) == 1, (cells, table)
    return lines[0]


def test_the_published_table_shows_ours_beside_each_number_or_not_run(report):
    text, _ = report
    assert "## Published (different budget)" in text
    section = text.split("## Published (different budget)")[1].split("\n## ")[0]
    assert "never tested against ours" in section and "different budget" in section
    # dropblock at batch 512 only: the mean of its three seeds and their 95% t interval
    values = [v for (reg, batch, _), v in CLASSIFY.items() if (reg, batch) == ("dropblock", 512)]
    mean = sum(values) / len(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    line = _row(section, "| dropblock", "77.9")
    assert f"{mean:.1f} [{low:.1f}, {high:.1f}] (n=3)" in line
    assert "batch 512 (mini 16)" in line and "CSPNet README" in line and "80 epochs" in line
    assert "batch 64" not in line
    # no column: every column of ours (top5 = top1 + 20 in the fixture), the | escaped
    for batch in (64, 512):
        values = [v + 20 for (reg, b, _), v in CLASSIFY.items() if (reg, b) == ("none", batch)]
        line = _row(section, "| none", f"batch {batch} (mini 16)")
        assert f"| {sum(values) / 3:.1f} [" in line and "CSP \\| table" in line
    # cbn ran only in the detection setting, where there is no top1
    assert "not run" in _row(section, "| cbn", "78.1")


def test_results_csv_has_one_published_row_per_entry(report):
    _, table = report
    published = table[table["kind"] == "published"]
    assert len(published) == len(ENTRIES)
    first = published.iloc[0]
    assert (first["row"], first["column"], first["metric"]) == ("dropblock", "batch=512", "top1")
    assert first["estimate"] == 77.9 and first["verdict"] == "untested"
    assert first["test"] == "published: CSPNet README (ImageNet, 80 epochs)"
    assert (first["rows"], first["columns"], first["study"]) == ("regularizer", "batch", "fixture")
    assert set(table["kind"]) == {"cell", "delta", "interaction", "published"}


def test_no_entries_no_section_and_no_rows(tmp_path):
    study = write_fixture(tmp_path / "study")
    out = write_results([study], out=study / "RESULTS.md", plots=False)
    assert "Published" not in out.read_text()
    assert "published" not in set(pd.read_csv(out.with_name("results.csv"))["kind"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": "high"}, "report.published[1].value must be a number"),
        ({"value": None}, "report.published[1].value is missing"),
        ({"sorce": "x"}, "report.published[1].sorce: unknown key"),
        ({"column": "mini_batch"}, "report.published[1].column must be KEY=VALUE"),
        ({"source": ""}, "report.published[1].source must be a non-empty string"),
    ],
)
def test_a_malformed_entry_names_its_key(change, message):
    entries = [ENTRIES[0], {**ENTRIES[1], **change}]
    with pytest.raises(ValueError, match=r"^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_published(entries)


def test_a_records_malformed_entries_are_skipped_not_fatal():
    bad = {"report": {"published": [{"row": "none"}]}}
    good = {"report": {"published": ENTRIES[:1]}}
    assert published_in_records([bad, good]) == parse_published(ENTRIES[:1])
    assert published_in_records([bad]) == ()
