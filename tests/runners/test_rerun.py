"""Idempotent studies: which earlier records stand for a job, and the CLI skipping and rerunning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from runners.core.record import CodeVersion, RunRecord, load_record
from runners.rerun import keep_in_history, plan_rerun
from tests.conftest import ROOT

#: What a job needs of the project (tests, docs and benchmarks are left out of the copy).
_PROJECT = {"run.py", "conf", "runners", "models", "layers", "reports", "ablations"}
CLEAN = CodeVersion(commit="a" * 40, dirty=False)
EDITED = CodeVersion(commit="a" * 40, dirty=True, edits="e" * 16)


def _write(tmp_path, **changes):
    fields = {"status": "completed", "config_hash": "h1", "code_version": CLEAN, **changes}
    RunRecord(**fields).write(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "code", "action"),
    [
        # The table of docs/ROBUSTNESS.md, row by row.
        ({}, CLEAN, "skip"),
        ({"status": "diverged"}, CLEAN, "skip"),  # a final result: not resumed, not retrained
        ({"status": "failed"}, CLEAN, "resume"),
        ({"status": "running"}, CLEAN, "resume"),
        ({"status": "pruned"}, CLEAN, "resume"),
        ({"config_hash": "h2"}, CLEAN, "fresh"),
        ({"config_hash": "h2", "status": "failed"}, CLEAN, "fresh"),
        ({}, CodeVersion(commit="b" * 40, dirty=False), "fresh"),  # the code changed: stale
        ({"status": "diverged"}, CodeVersion(commit="b" * 40, dirty=False), "fresh"),
        ({"status": "running"}, CodeVersion(commit="b" * 40, dirty=False), "fresh"),
        ({}, EDITED, "fresh"),  # edits now
        ({"code_version": EDITED}, CLEAN, "fresh"),  # edits then
        ({"code_version": EDITED}, EDITED, "skip"),  # the same edits of the same commit
        ({"code_version": EDITED}, CodeVersion("a" * 40, True, "f" * 16), "fresh"),
        ({"code_version": CodeVersion("a" * 40, True)}, CodeVersion("a" * 40, True), "fresh"),
        ({}, CodeVersion(), "fresh"),  # not a git checkout: cannot be identified
        ({"code_version": CodeVersion()}, CodeVersion(), "fresh"),
    ],
)
def test_rerun_plan_follows_the_table(tmp_path, changes, code, action):
    job = _write(tmp_path, **changes)
    plan = plan_rerun(job, "h1", code)
    assert plan.action == action, plan.reason
    assert plan_rerun(job, "h1", code, force=True).action == "fresh"


def test_missing_or_unreadable_record_means_a_fresh_start(tmp_path):
    assert plan_rerun(tmp_path, "h1", CLEAN).action == "fresh"
    for text in ("{not json", "[]", '{"schema_version": 2, "status": "bogus"}', "\xff\xfe"):
        (tmp_path / "run.json").write_text(text)
        plan = plan_rerun(tmp_path, "h1", CLEAN)
        assert plan.action == "fresh" and "cannot be read" in plan.reason


def test_replaced_records_are_kept_in_numbered_history(tmp_path):
    assert keep_in_history(tmp_path) is None
    for status in ("failed", "completed"):
        _write(tmp_path, status=status)
        keep_in_history(tmp_path)
    assert not (tmp_path / "run.json").exists()
    kept = sorted(p.name for p in (tmp_path / "history").iterdir())
    assert kept == ["run.1.json", "run.2.json"]
    assert load_record(tmp_path / "history" / "run.1.json").status == "failed"


def _git(repo, *args):
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def project_copy(tmp_path):
    """The project's files in a fresh git repository with one commit (a clean code version)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    repo = tmp_path / "project"
    for name in listed:
        source = ROOT / name
        if source.is_file() and name.split("/")[0] in _PROJECT:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "snapshot")
    return repo


def _run(repo, *args):
    result = subprocess.run(
        [sys.executable, str(repo / "run.py"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    return result


def test_force_reruns_a_job_that_would_be_skipped(make_cfg, tmp_path, monkeypatch):
    from runners import job as job_module

    monkeypatch.setattr(job_module, "code_version", lambda: CLEAN)  # git is the boundary
    context = job_module.JobContext(job_dir=tmp_path)
    first = job_module.run_job(make_cfg(), context)
    written = (tmp_path / "run.json").stat().st_mtime_ns
    skipped = job_module.run_job(make_cfg(), context)
    assert skipped.started_at == first.started_at
    assert (tmp_path / "run.json").stat().st_mtime_ns == written
    forced = job_module.run_job(make_cfg("force=true"), context)
    assert forced.status == "completed" and forced is not first
    assert (tmp_path / "run.json").stat().st_mtime_ns != written
    assert forced.config_hash == first.config_hash  # force is not part of what a run computes
    assert forced.resumed_from is None  # force starts over, whatever the checkpoint holds
    kept = load_record(tmp_path / "history" / "run.1.json")  # nothing is lost
    assert kept.started_at == first.started_at and kept.status == "completed"


def test_rerunning_the_command_skips_completed_jobs_until_the_code_changes(
    project_copy, tmp_path, data_cache
):
    """After a new commit the job retrains from scratch: not resumed from its old checkpoint
    (which once relabelled the old run as the new code's), the old record kept in history."""
    job = tmp_path / "job"
    args = [
        "epochs=2", "data.train_per_class=6", "data.val_per_class=3", "device=cpu", "logger=none",
        f"data.cache_dir={data_cache}", f"hydra.run.dir={job}",
    ]  # fmt: skip
    first = _run(project_copy, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    done = load_record(job)
    assert done.status == "completed" and done.code_version.dirty is False

    again = _run(project_copy, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped" in again.stdout
    assert load_record(job).started_at == done.started_at  # the record was not touched

    (project_copy / "runners" / "NOTE.txt").write_text("a code change\n")
    _git(project_copy, "add", "-A")
    _git(project_copy, "commit", "-qm", "change")
    stale = _run(project_copy, *args)
    assert stale.returncode == 0, stale.stderr[-3000:]
    assert "rerunning" in stale.stdout and "other code" in stale.stdout
    assert "(fresh)" in stale.stdout
    rerun = load_record(job)
    assert rerun.status == "completed"
    assert rerun.code_version.commit != done.code_version.commit
    assert rerun.resumed_from is None and len(rerun.epochs) == 2
    assert rerun.started_at != done.started_at
    old = load_record(job / "history" / "run.1.json")
    assert old.code_version == done.code_version and old.started_at == done.started_at
