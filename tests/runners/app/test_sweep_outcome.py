"""The sweep's outcome (``runners.app.sweep_outcome``) in process: which records a sweep wrote,
what they make the exit status, and the one outcome each process shares."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runners.app import sweep_outcome
from runners.app.sweep_outcome import EXIT_FAILED, SweepOutcome, snapshot
from runners.core.job_lock import JobLock
from runners.core.record import RECORD_NAME, RunRecord


def _job(sweep: Path, name: str, status: str, error: str | None = None) -> Path:
    job_dir = sweep / name
    RunRecord(status=status, job_dir=str(job_dir), error=error).write(job_dir)
    return job_dir


@pytest.fixture(autouse=True)
def _fresh_outcome():
    """Each test starts, and leaves this process, with a fresh outcome."""
    sweep_outcome.reset()
    yield
    sweep_outcome.reset()


def test_a_snapshot_finds_every_record_under_the_sweep(tmp_path):
    first, second = _job(tmp_path, "a", "completed"), _job(tmp_path / "group", "b", "failed")
    (tmp_path / "c").mkdir()  # a job dir without a record
    taken = snapshot(tmp_path)
    assert set(taken) == {first / RECORD_NAME, second / RECORD_NAME}
    assert snapshot(tmp_path / "missing") == {}


def test_completed_and_pruned_jobs_exit_zero(tmp_path):
    outcome = SweepOutcome()
    before = snapshot(tmp_path)
    _job(tmp_path, "a", "completed")
    _job(tmp_path, "b", "pruned")
    records = outcome.summarize(tmp_path, before)
    assert sorted(r.status for r in records) == ["completed", "pruned"]
    assert outcome.exit_status() == 0


@pytest.mark.parametrize("status", ["failed", "diverged", "running"])
def test_a_job_that_did_not_complete_fails_the_command(tmp_path, caplog, status):
    outcome = SweepOutcome()
    before = snapshot(tmp_path)
    _job(tmp_path, "a", "completed")
    bad = _job(tmp_path, "b", status, error="boom")
    with caplog.at_level(logging.ERROR, logger=sweep_outcome.__name__):
        records = outcome.summarize(tmp_path, before)
    assert len(records) == 2
    assert outcome.exit_status() == EXIT_FAILED
    assert caplog.messages == [
        f"1 of 2 jobs did not complete (1 completed, 1 {status}):\n  {status}: {bad}: boom"
    ]


def test_records_the_sweep_did_not_write_are_not_its_jobs(tmp_path):
    outcome = SweepOutcome()
    _job(tmp_path, "skipped", "failed")  # e.g. another command's job in the same directory
    rerun = _job(tmp_path, "rerun", "failed")
    before = snapshot(tmp_path)
    RunRecord(status="completed", job_dir=str(rerun)).write(rerun)  # written again: a job
    records = outcome.summarize(tmp_path, before)
    assert [r.job_dir for r in records] == [str(rerun)]
    assert outcome.exit_status() == 0


def test_a_job_another_live_process_holds_is_left_to_it(tmp_path, caplog):
    outcome = SweepOutcome()
    before = snapshot(tmp_path)
    held = _job(tmp_path, "held", "running")
    _job(tmp_path, "done", "completed")
    with JobLock(held), caplog.at_level(logging.INFO, logger=sweep_outcome.__name__):
        records = outcome.summarize(tmp_path, before)
    assert [r.status for r in records] == ["completed"]
    assert outcome.exit_status() == 0
    assert f"still running in another process: {held}" in caplog.messages


def test_an_unreadable_record_is_named_and_left_out(tmp_path, caplog):
    outcome = SweepOutcome()
    before = snapshot(tmp_path)
    broken = tmp_path / "broken" / RECORD_NAME
    broken.parent.mkdir()
    broken.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=sweep_outcome.__name__):
        assert outcome.summarize(tmp_path, before) == []
    assert outcome.exit_status() == 0
    assert any(str(broken) in message for message in caplog.messages)


def test_failed_trials_are_the_study_s_to_record(tmp_path, caplog):
    outcome = SweepOutcome()
    outcome.trials_may_fail()
    before = snapshot(tmp_path)
    _job(tmp_path, "trial-0", "failed", error="boom")
    with caplog.at_level(logging.ERROR, logger=sweep_outcome.__name__):
        outcome.summarize(tmp_path, before)
    assert outcome.exit_status() == 0
    assert caplog.messages  # still said


def test_fail_and_summarize_set_the_exit_status(tmp_path):
    outcome = SweepOutcome()
    assert outcome.exit_status() == 0 and not outcome.started
    outcome.mark_started()
    outcome.fail()
    assert outcome.started and outcome.exit_status() == EXIT_FAILED
    # The last multirun's summary decides (a results table that fails is marked after it).
    outcome.summarize(tmp_path, snapshot(tmp_path))
    assert outcome.exit_status() == 0


def test_each_process_has_one_outcome():
    shared = sweep_outcome.current()
    assert sweep_outcome.current() is shared
    shared.fail()
    fresh = sweep_outcome.reset()
    assert fresh is not shared and sweep_outcome.current() is fresh
    assert fresh.exit_status() == 0 and not fresh.started
