"""The real CLI in a subprocess: a tiny multirun, a single run, and every study."""

from __future__ import annotations

import re

import pytest

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners.core.record import load_record
from tests.conftest import ROOT, run_cli

TINY_CLI = ["epochs=1", "data.train_per_class=6", "data.val_per_class=3", "device=cpu"]
#: Extra overrides a study needs at the tiny budget (an Optuna search: two trials).
STUDY_TINY = {
    "dropblock_search": ["hydra.sweeper.n_trials=2"],
    # the GPU recipe (CSPResNeXt-50 at 256, batch 512) on the tiny net at 32px, 16 subdivisions
    "darknet_thread": ["backbone=tinyresnet", "data.image_size=32", "batch=64"],
}


def test_multirun_writes_records_results_and_wandb(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "regularizer=none,dropout", "batch=64,512", *TINY_CLI,
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    records = sorted(sweep.rglob("run.json"))
    assert len(records) == 4
    loaded = [load_record(p) for p in records]
    assert all(r.status == "completed" for r in loaded)
    assert {(r.config["regularizer"]["name"], r.batch) for r in loaded} == {
        ("none", 64), ("none", 512), ("dropout", 64), ("dropout", 512),
    }  # fmt: skip

    results = sweep / "RESULTS.md"
    assert f"results: {results}" in result.stdout
    text = results.read_text()
    for metric in ("Top-1 (%)", "Top-5 (%)"):
        section = text.split(f"### {metric}")[1].split("###")[0]
        header = next(line for line in section.splitlines() if line.startswith("| regularizer"))
        assert re.findall(r"batch (\d+)", header) == ["64", "512"]
        rows = [
            line.split("|")[1].strip()
            for line in section.splitlines()
            if line.startswith("| ") and "regularizer" not in line
        ]
        assert rows == ["none", "dropout"]
        assert all(
            "(n=1)" in line
            for line in section.splitlines()
            if line.startswith(("| none", "| dropout"))
        )

    offline = find_offline_runs(sweep)
    assert len(offline) == 4, "one W&B run per job (finish() called between jobs)"
    runs = [read_offline_run(p) for p in offline]
    assert len({r.run_id for r in runs}) == 4
    for run in runs:
        assert {"top1", "top5"} <= set(run.summary)
        assert run.group == "adhoc" and run.exit_code == 0
        assert any(tag.startswith("regularizer=") for tag in run.tags)
    by_name = {r.name: r for r in runs}
    for record in loaded:
        run = by_name[record.run_name]
        assert run.summary["top1"] == pytest.approx(record.final["top1"])


def test_single_run_prints_its_record(tmp_path, data_cache):
    job = tmp_path / "job"
    result = run_cli(
        *TINY_CLI, "logger=none", f"data.cache_dir={data_cache}", f"hydra.run.dir={job}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"run record: {job}/run.json" in result.stdout
    assert load_record(job).status == "completed"


#: Studies whose tiny run adds nothing CI does not already prove more cheaply: batch_scaling is
#: default's machinery with another sweep key; darknet_thread's and darknet_thread_cpu's
#: composition, arms, subdivisions and placements are checked in
#: tests/runners/config/test_darknet_thread.py, its published table in
#: tests/reports/test_published.py; dropblock_search runs, twice, as the ``study6`` fixture of
#: tests/runners/search/test_optuna_sweep.py. ``python -m pytest -m slow`` runs them.
SLOW_STUDIES = {"batch_scaling", "darknet_thread", "darknet_thread_cpu", "dropblock_search"}


@pytest.mark.parametrize(
    "study",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_STUDIES else name
        for name in sorted(p.stem for p in (ROOT / "ablations").glob("*.yaml"))
    ],
)
def test_every_study_runs_at_a_tiny_budget(tmp_path, data_cache, study):
    sweep = tmp_path / study
    result = run_cli(
        "-m", f"ablation={study}", *TINY_CLI, "logger=none", "seed=0", *STUDY_TINY.get(study, []),
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [load_record(p) for p in sweep.rglob("run.json")]
    assert records and all(r.status == "completed" and r.study == study for r in records)
    assert (sweep / "RESULTS.md").is_file() and (sweep / "results.csv").is_file()
    if study == "default":  # the thread's claims, pre-registered in the study, checked by name
        text = (sweep / "RESULTS.md").read_text()
        assert "## Findings" in text and "### Claims (pre-registered" in text
        for claim in ("dropblock_needs_large_mini_batch", "cbn_helps_small_mini_batch"):
            assert f"*{claim}*" in text
        assert {r.mini_batch for r in records} == {8, 64} and {r.batch for r in records} == {64}
    if study.startswith("darknet_thread"):  # the four arms, and ImageNet's numbers beside ours
        text = (sweep / "RESULTS.md").read_text()
        arms = {r.config["regularizer"]["name"] for r in records}
        assert arms == {"none", "dropblock", "cbn", "dropblock_cbn"}
        assert {r.subdivisions for r in records} == {16}
        published = text.split("## Published (different budget)")[1].split("\n## ")[0]
        line = next(row for row in published.splitlines() if "47.3" in row)
        # the GPU recipe's 47.3 is at mini_batch=32, which the tiny run (mini 4) has not
        ours = "not run" if study == "darknet_thread" else "(n=1, no interval)"
        assert "dropblock_cbn" in line and ours in line
        assert "*dropblock_cbn_works_poorly*" in text


def test_the_missions_command(tmp_path, data_cache):
    sweep = tmp_path / "mission"
    result = run_cli(
        "-m", "regularizer=dropblock,cbn", "batch=64,512", *TINY_CLI, "logger=none",
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [load_record(p) for p in sweep.rglob("run.json")]
    assert sorted((r.config["regularizer"]["name"], r.batch) for r in records) == [
        ("cbn", 64), ("cbn", 512), ("dropblock", 64), ("dropblock", 512),
    ]  # fmt: skip
    for record in records:
        kind = record.config["regularizer"]["name"]
        assert record.status == "completed"
        assert record.placements and all(p.startswith(f"{kind}:") for p in record.placements)
    text = (sweep / "RESULTS.md").read_text()
    assert "| dropblock " in text and "| cbn " in text


def test_help_lists_only_real_options():
    """The schemas (``base_<group>``) are stored without a group, so ``--help`` and the option
    lists of errors name only what a user can choose."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "base_" not in groups
    assert "regularizer: cbn, dropblock, dropblock_cbn, dropout, none" in groups
