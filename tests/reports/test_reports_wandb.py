"""The W&B path: runs logged by real offline runs of the harness give the same RESULTS.md.

A tiny multirun (2 regularizers x 2 seeds, 1 epoch, W&B offline) writes run.json files and offline W&B
logs. The report from the W&B logs must equal the report from the run.json files, both read
offline and through ``python -m reports --wandb ENTITY/PROJECT`` against a local stand-in of
the W&B server (tests/reports/wandb_http_standin.py: the HTTP boundary is the only thing replaced).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports import ReportOptions, load_records, write_records, write_results
from reports.wandb_offline import find_offline_runs, read_offline_run
from reports.wandb_source import newest_per_job, offline_records
from tests.conftest import ROOT, run_cli
from tests.reports.wandb_http_standin import wandb_server

TINY_CLI = ["epochs=1", "data.train_per_class=6", "data.val_per_class=3", "device=cpu"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_cache) -> Path:
    sweep = tmp_path_factory.mktemp("wandb-study") / "sweep"
    result = run_cli(
        "-m", "regularizer=none,dropout", "seed=0,1", "batch=32", *TINY_CLI, "study=wb",
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def test_offline_wandb_runs_give_the_same_records_and_results(sweep, tmp_path):
    from_json = {r.run_name: r for r in load_records([sweep])}
    from_wandb = {r.run_name: r for r in offline_records([sweep])}
    assert len(from_json) == 4 and from_wandb.keys() == from_json.keys()
    for name, record in from_json.items():
        logged = from_wandb[name]
        assert logged.status == record.status == "completed"
        assert logged.final == pytest.approx(record.final)
        assert logged.best == pytest.approx(record.best)
        assert (logged.params, logged.flops) == (record.params, record.flops)
        assert logged.code_version == record.code_version
        assert logged.started_at == record.started_at
        assert [e.epoch for e in logged.epochs] == [e.epoch for e in record.epochs]
        for mine, theirs in zip(logged.epochs, record.epochs, strict=True):
            assert mine.metrics == pytest.approx(theirs.metrics)
        assert (logged.batch, logged.mini_batch, logged.study) == (32, 32, "wb")
    job_dirs = {read_offline_run(p).summary.get("job_dir") for p in find_offline_runs(sweep)}
    assert job_dirs == {r.job_dir for r in from_json.values()}  # what newest_per_job groups by

    expected = write_results([sweep], out=tmp_path / "json.md", plots=False).read_text()
    assert "### Top-1 (%): difference from regularizer=none" in expected
    assert "| dropout " in expected and "(n=2)" in expected
    got = write_records(
        list(from_wandb.values()), out=tmp_path / "wandb.md", options=ReportOptions(plots=False)
    )
    assert got.read_text() == expected
    # The multirun callback wrote the same tables (with plots) into the sweep directory.
    callback = (sweep / "RESULTS.md").read_text()
    assert expected.split("## Models")[0].split("\n", 1)[1] in callback
    assert (sweep / "plots").is_dir()


def test_cli_reads_a_wandb_project_over_http(sweep, tmp_path):
    runs = [read_offline_run(p) for p in find_offline_runs(sweep)]
    expected = write_results([sweep], out=tmp_path / "json.md", plots=False).read_text()
    out = tmp_path / "online.md"
    with wandb_server("lab", "ablations", runs) as url:
        env = {**os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": "0" * 40,
               "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "reports", "--wandb", "lab/ablations", "--out", str(out),
             "--no-plots"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_text() == expected


def test_of_several_wandb_runs_of_one_job_the_newest_stands_for_it():
    from runners.core.record import RunRecord

    def run(job_dir, started_at):
        return job_dir, RunRecord(
            status="completed", job_dir=f"w-{started_at}", started_at=started_at
        )

    kept = newest_per_job(
        [run("/s/a", "2026-01-01T00:00:02"), run("/s/a", "2026-01-01T00:00:09"),
         run("/s/a", "2026-01-01T00:00:05"), run("/s/b", "2026-01-01T00:00:01"),
         run(None, "2026-01-01T00:00:03"), run(None, "2026-01-01T00:00:04")]
    )  # fmt: skip
    assert sorted(r.started_at[-2:] for r in kept) == ["01", "03", "04", "09"]
