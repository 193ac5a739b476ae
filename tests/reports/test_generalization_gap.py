"""The generalization gap in RESULTS.md and results.csv: derived from the records' scores on
training images, shown per arm, summarised for the baseline in the Findings, never tested."""

from __future__ import annotations

import pandas as pd
import pytest

from reports import write_results
from tests.reports.reports_fixture import CLASSIFY, train_scores, write_fixture


@pytest.fixture
def report(tmp_path):
    study = write_fixture(tmp_path / "study")
    out = write_results([study], out=study / "RESULTS.md", plots=False)
    return out.read_text(), pd.read_csv(study / "results.csv")


def _expected_gaps(regularizer: str, batch: int) -> list[float]:
    return [
        train_scores(reg, seed, top1)["train_eval_top1"] - top1
        for (reg, b, seed), top1 in CLASSIFY.items()
        if (reg, b) == (regularizer, batch)
    ]


def test_gap_cells_are_train_minus_val_per_arm(report):
    _, table = report
    cells = table[(table["metric"] == "gap_top1") & (table["kind"] == "cell")]
    assert len(cells) == 4
    for _, cell in cells.iterrows():
        batch = int(cell["column"].split()[1])
        expected = pd.Series(_expected_gaps(cell["row"], batch))
        assert cell["estimate"] == pytest.approx(expected.mean())
        assert cell["std"] == pytest.approx(expected.std())
        assert cell["n"] == 3
    loss = table[(table["metric"] == "gap_loss") & (table["row"] == "none")]
    assert loss["estimate"].tolist() == pytest.approx([0.625, 0.625])  # 1.0 - (1.0 - 12.5 / 20)


def test_gap_is_shown_not_tested(report):
    text, table = report
    assert set(table[table["metric"].str.startswith("gap")]["kind"]) == {"cell"}
    assert "### Generalization gap" in text
    assert "| dropblock     | 6.5 ± 0.5 (n=3)" in text
    findings = text.split("## Findings")[1].split("\n## ")[0]
    assert "Room to regularize: none's Top-1" in findings
    assert "12.5 points at batch 64 (mini 16); 12.5 points at batch 512 (mini 16)" in findings
    assert "gap" not in findings.split("Room to regularize")[0]  # no verdicts on the gap


def test_runs_without_training_scores_show_no_gap(tmp_path):
    from runners.core.record import load_record

    study = write_fixture(tmp_path / "study")
    for record_path in (study / "classify").rglob("run.json"):
        record = load_record(record_path.parent)
        record.final = {k: v for k, v in record.final.items() if not k.startswith("train_eval")}
        record.write(record_path.parent)
    text = write_results([study], out=study / "RESULTS.md", plots=False).read_text()
    assert "Generalization gap" not in text and "Room to regularize" not in text
