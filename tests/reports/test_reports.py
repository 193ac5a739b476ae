"""Aggregation of run records into RESULTS.md tables."""

from __future__ import annotations

import statistics
import subprocess
import sys

from reports import ReportOptions, collect_runs, format_cell, render_results, write_results
from runners.core.record import RunRecord
from tests.conftest import ROOT

FIXTURE = {
    # (regularizer, batch, seed): top1
    ("none", 64, 0): 70.0,
    ("none", 64, 1): 72.0,
    ("none", 64, 2): 74.5,
    ("none", 512, 0): 60.0,
    ("dropout", 64, 0): 71.0,
    ("dropout", 64, 1): 73.0,
    ("dropout", 512, 0): 58.0,
    ("dropout", 512, 1): 61.0,
}


def _write_fixture(root, extra_failed=True):
    for (reg, batch, seed), top1 in FIXTURE.items():
        record = RunRecord(
            status="completed",
            study="fixture",
            batch=batch,
            subdivisions=2,
            mini_batch=batch // 2,
            config={
                "task": {"name": "classify"},
                "data": {"name": "synthetic"},
                "backbone": {"name": "tinyresnet"},
                "regularizer": {"name": reg},
                "epochs": 3,
                "seed": seed,
            },
            final={"top1": top1, "top5": top1 + 20, "loss": 1.0},
        )
        record.write(root / f"{reg}-{batch}-{seed}")
    if extra_failed:
        failed = RunRecord(
            status="failed",
            study="fixture",
            error="RuntimeError: boom | bad",
            config={"regularizer": {"name": "none"}},
        )
        failed.write(root / "zz-failed")


def test_collect_finds_every_record(tmp_path):
    _write_fixture(tmp_path)
    runs = collect_runs([tmp_path])
    assert len(runs) == len(FIXTURE) + 1
    assert set(runs["status"]) == {"completed", "failed"}


def test_cells_are_mean_std_and_n(tmp_path):
    _write_fixture(tmp_path)
    text = render_results(collect_runs([tmp_path]), ReportOptions(metrics=["top1"]))
    none64 = [70.0, 72.0, 74.5]
    expected = f"{statistics.mean(none64):.1f} ± {statistics.stdev(none64):.1f} (n=3)"
    assert expected == "72.2 ± 2.3 (n=3)"
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| regularizer"))
    assert "batch 64 (mini 32)" in header and "batch 512 (mini 256)" in header
    assert header.index("batch 64") < header.index("batch 512")
    none_row = next(line for line in lines if line.startswith("| none"))
    dropout_row = next(line for line in lines if line.startswith("| dropout"))
    assert lines.index(none_row) < lines.index(dropout_row)  # baseline first
    assert expected in none_row and "60.0 (n=1)" in none_row
    assert "72.0 ± 1.4 (n=2)" in dropout_row and "59.5 ± 2.1 (n=2)" in dropout_row


def test_failed_runs_are_listed_not_averaged(tmp_path):
    _write_fixture(tmp_path)
    text = render_results(collect_runs([tmp_path]), ReportOptions(metrics=["top1"]))
    assert "## Runs left out" in text
    assert "| failed | RuntimeError: boom \\| bad |" in text
    assert "8 used, 1 left out (1 failed)" in text


def test_format_cell():
    assert format_cell(71.25, 1.04, 3) == "71.2 ± 1.0 (n=3)"
    assert format_cell(71.25, float("nan"), 1) == "71.2 (n=1)"
    assert format_cell(float("nan"), float("nan"), 0) == "–"


def test_write_results_and_cli_agree(tmp_path):
    _write_fixture(tmp_path / "runs")
    api = write_results([tmp_path / "runs"], out=tmp_path / "api.md")
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "reports",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "cli.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert cli.stdout.strip() == str(tmp_path / "cli.md")
    assert api.read_text() == (tmp_path / "cli.md").read_text()


def test_cli_reports_a_missing_path(tmp_path, capsys):
    # In process: main() is what `python -m reports` runs (the test above runs the real one).
    from reports.__main__ import main

    assert main([str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_runs_with_other_uncommitted_edits_of_one_commit_are_stale():
    import pandas as pd

    from reports.stale import code_label, stale_reasons

    assert code_label("a" * 40, True, "0123456789abcdef") == "aaaaaaa-dirty.01234567"
    assert (
        code_label("a" * 40, True) == "aaaaaaa-dirty" and code_label("a" * 40, False) == "aaaaaaa"
    )
    runs = pd.DataFrame(
        {
            "study": ["s"] * 3,
            "commit": ["a" * 40] * 3,
            "dirty": [True] * 3,
            "edits": ["1111111111111111", "1111111111111111", "2222222222222222"],
            "started_at": ["2026-01-01T00:00:00", "2026-01-01T00:00:01", "2026-01-02T00:00:00"],
            "job_dir": ["x", "y", "z"],
        }
    )
    reasons = stale_reasons(runs).tolist()
    assert reasons[2] == "" and reasons[0] == reasons[1] != ""
    assert "aaaaaaa-dirty.11111111" in reasons[0] and "aaaaaaa-dirty.22222222" in reasons[0]


def test_task_views_show_the_metrics_each_task_records():
    """One table of tasks (``runners.core.record.TASK_METRICS``): the reports' view of each task,
    the config's primary metric and the sweeper's ``auto`` objective all follow it."""
    from reports.tasks import TASK_VIEWS, metric_view, task_view
    from runners.config.schema import PRIMARY_METRIC
    from runners.core.record import DEFAULT_TASK, TASK_METRICS
    from runners.core.study_settings import objective_metric

    assert set(TASK_VIEWS) == set(TASK_METRICS) == set(PRIMARY_METRIC)
    for task, view in TASK_VIEWS.items():
        recorded = TASK_METRICS[task]
        assert view.shown[0] == recorded.primary == PRIMARY_METRIC[task]
        assert objective_metric("auto", task) == recorded.primary
        assert set(view.shown) | set(view.model_columns) <= set(recorded.metrics)
    assert task_view(None) == task_view("segment") == TASK_VIEWS[DEFAULT_TASK]
    assert [metric_view(m).header for m in TASK_VIEWS["detect"].model_columns] == [
        "AP", "AP50", "AP75", "APS", "APM", "APL",
    ]  # fmt: skip
    assert metric_view("loss").digits == 3 and metric_view("best_top1").title == "best_top1"
