"""W&B failing never fails a run: one warning, and run.json still holds everything."""

from __future__ import annotations

import errno
import os
import warnings

import pytest
from omegaconf import OmegaConf

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners import job as job_module
from runners.core.record import load_record
from runners.tracking.trackers import NullTracker, WandbTracker, create_tracker


def _no_credentials(tmp_path) -> dict[str, str]:
    """An environment where W&B finds no key: empty HOME and config dir, no WANDB_API_KEY."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "NETRC")}
    return {**env, "HOME": str(home), "WANDB_CONFIG_DIR": str(home / ".config" / "wandb")}


def _assert_complete(record) -> None:
    assert record.status == "completed"
    assert record.epochs and {"top1", "top5", "loss"} <= set(record.final)


def test_online_without_a_key_warns_once_and_the_run_completes(make_cfg, tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(key, raising=False)
    for key, value in _no_credentials(tmp_path).items():
        monkeypatch.setenv(key, value)
    job = tmp_path / "job"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = job_module.run_job(
            make_cfg("logger=wandb", "logger.mode=online"), job_module.JobContext(job_dir=job)
        )
    messages = [str(w.message) for w in caught if "W&B init failed" in str(w.message)]
    assert len(messages) == 1 and "No API key" in messages[0], messages
    _assert_complete(record)
    _assert_complete(load_record(job))


def _logger(**changes):
    return OmegaConf.create(
        {"name": "wandb", "project": "p", "entity": None, "mode": "offline", "init_timeout": 60.0}
        | changes
    )


def _tracker(logger, job_dir):
    return create_tracker(logger, job_dir=job_dir, run_name="r", group="g", tags=[], config={})


def test_bad_key_without_a_network_gives_up_after_init_timeout(tmp_path, monkeypatch):
    for key, value in _no_credentials(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # well-formed, unknown to any server
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.warns(UserWarning, match="W&B init failed") as caught:
        tracker = _tracker(_logger(mode="online", init_timeout=3.0), tmp_path)
    assert isinstance(tracker, NullTracker) and len(caught) == 1


def test_unwritable_wandb_directory_warns_once_and_the_run_completes(make_cfg, tmp_path):
    (tmp_path / "wandb").write_text("a file where W&B wants its directory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = job_module.run_job(
            make_cfg("logger=wandb"), job_module.JobContext(job_dir=tmp_path)
        )
    messages = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(messages) == 1 and "is not writable" in messages[0]
    _assert_complete(record)
    assert load_record(tmp_path).final == record.final


def test_disk_full_during_the_run_warns_once_and_finishes_the_run(make_cfg, tmp_path, monkeypatch):
    real_create = job_module.create_tracker
    trackers = []

    def create_then_fill_the_disk(*args, **kwargs):
        tracker = real_create(*args, **kwargs)
        assert isinstance(tracker, WandbTracker)

        def no_space(*_args, **_kwargs):  # the boundary: W&B's write fails as on a full disk
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(tracker._run, "log", no_space)
        trackers.append(tracker)
        return tracker

    monkeypatch.setattr(job_module, "create_tracker", create_then_fill_the_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = job_module.run_job(
            make_cfg("logger=wandb", "epochs=2"), job_module.JobContext(job_dir=tmp_path)
        )
    messages = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(messages) == 1 and "No space left on device" in messages[0], messages
    _assert_complete(record)
    assert len(load_record(tmp_path).epochs) == 2
    (offline,) = find_offline_runs(tmp_path)
    assert read_offline_run(offline).exit_code == 1  # finished, marked as not clean
