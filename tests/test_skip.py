"""Idempotent studies: which earlier records stand for a job, and the CLI skipping and rerunning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from runners.record import CodeVersion, RunRecord, load_record
from runners.skip import reusable_record
from tests.conftest import ROOT

#: What a job needs of the project (tests, docs and benchmarks are left out of the copy).
_PROJECT = {"run.py", "conf", "runners", "models", "layers", "reports", "ablations"}
CLEAN = CodeVersion(commit="a" * 40, dirty=False)


def _write(tmp_path, **changes):
    fields = {"status": "completed", "config_hash": "h1", "code_version": CLEAN, **changes}
    RunRecord(**fields).write(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "code", "reused"),
    [
        ({}, CLEAN, True),
        ({"status": "failed"}, CLEAN, False),
        ({"status": "diverged"}, CLEAN, False),
        ({"status": "running"}, CLEAN, False),
        ({"config_hash": "h2"}, CLEAN, False),
        ({}, CodeVersion(commit="b" * 40, dirty=False), False),  # the code changed: stale
        ({}, CodeVersion(commit="a" * 40, dirty=True), False),  # edits now: cannot tell
        ({"code_version": CodeVersion(commit="a" * 40, dirty=True)}, CLEAN, False),
        ({}, CodeVersion(), False),  # not a git checkout
    ],
)
def test_only_a_completed_run_of_the_same_config_and_clean_code_is_reused(
    tmp_path, changes, code, reused
):
    job = _write(tmp_path, **changes)
    assert (reusable_record(job, "h1", code) is not None) is reused


def test_missing_or_unreadable_record_means_run(tmp_path):
    assert reusable_record(tmp_path, "h1", CLEAN) is None
    (tmp_path / "run.json").write_text("{not json")
    assert reusable_record(tmp_path, "h1", CLEAN) is None


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


def test_rerunning_the_command_skips_completed_jobs_until_the_code_changes(
    project_copy, tmp_path, data_cache
):
    job = tmp_path / "job"
    args = [
        "epochs=1", "data.train_per_class=6", "data.val_per_class=3", "device=cpu", "logger=none",
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
    rerun = load_record(job)
    assert rerun.status == "completed"
    assert rerun.code_version.commit != done.code_version.commit
