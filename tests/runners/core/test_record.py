"""The run record: schema, atomic writes, and the status a job leaves behind."""

from __future__ import annotations

import json
import os

import pytest

from runners.core.record import (
    RECORD_NAME,
    SCHEMA_VERSION,
    EpochMetrics,
    RunRecord,
    best_metrics,
    load_record,
)
from runners.job import JobContext, run_job


def test_round_trip_keeps_every_field(tmp_path):
    record = RunRecord(status="completed", study="s", batch=64, subdivisions=4, mini_batch=16)
    record.epochs.append(
        EpochMetrics(1, 2.0, 0.1, 3.0, 300.0, {"loss": 1.5, "top1": 40.0, "top5": 90.0})
    )
    record.final = {"top1": 40.0, "top5": 90.0, "loss": 1.5}
    path = record.write(tmp_path)
    assert path == tmp_path / RECORD_NAME
    assert load_record(tmp_path) == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_version_1_record_is_upgraded_on_read(tmp_path):
    epoch = {"epoch": 1, "train_loss": 2.0, "loss": 1.5, "top1": 40.0, "top5": 90.0, "lr": 0.1}
    epoch |= {"epoch_time_s": 3.0, "images_per_s": 300.0}
    (tmp_path / RECORD_NAME).write_text(
        json.dumps({"schema_version": 1, "status": "completed", "epochs": [epoch]})
    )
    record = load_record(tmp_path)
    assert record.schema_version == SCHEMA_VERSION
    assert record.epochs[0].metrics == {"loss": 1.5, "top1": 40.0, "top5": 90.0}
    assert record.epochs[0].lr == 0.1


def test_best_metrics_minimises_loss_maximises_the_rest_and_skips_nan():
    epochs = [
        EpochMetrics(1, 1.0, 0.1, 1.0, 1.0, {"loss": 2.0, "top1": 30.0, "AP": float("nan")}),
        EpochMetrics(2, 1.0, 0.1, 1.0, 1.0, {"loss": 1.0, "top1": 20.0, "AP": 5.0}),
        EpochMetrics(3, 1.0, 0.1, 1.0, 1.0, {}),
    ]
    assert best_metrics(epochs) == {"loss": 1.0, "top1": 30.0, "AP": 5.0}


def test_unknown_status_and_newer_schema_are_refused(tmp_path):
    with pytest.raises(ValueError, match="status must be one of"):
        RunRecord(status="done")
    (tmp_path / RECORD_NAME).write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="schema_version"):
        load_record(tmp_path)


def test_write_is_atomic(tmp_path, monkeypatch):
    RunRecord(status="running", study="first").write(tmp_path)

    def broken_fsync(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # fails once the temporary file is written
    with pytest.raises(OSError, match="disk full"):
        RunRecord(status="completed", study="second").write(tmp_path)
    monkeypatch.undo()
    assert load_record(tmp_path).study == "first"  # the old record is intact
    assert [p.name for p in tmp_path.iterdir()] == [RECORD_NAME]  # no temporary left


def test_completed_run_has_the_full_record(make_cfg, tmp_path):
    cfg = make_cfg("regularizer=dropout", "batch=16", "subdivisions=2")
    record = run_job(cfg, JobContext(job_dir=tmp_path, run_name="t", overrides=["batch=16"]))
    saved = load_record(tmp_path)
    assert saved == record
    assert saved.status == "completed" and saved.error is None
    assert saved.mini_batch == 8 and saved.batch == 16 and saved.subdivisions == 2
    assert saved.config["regularizer"]["name"] == "dropout"
    assert len(saved.config_hash) == 16
    assert saved.code_version.commit is None or len(saved.code_version.commit) == 40
    assert {"torch", "hydra-core", "python"} <= set(saved.packages)
    scored = {"top1", "top5", "loss"}
    scored |= {f"train_eval_{name}" for name in scored}  # task.train_eval_samples
    assert set(saved.final) == scored and set(saved.best) == scored
    assert len(saved.epochs) == 1 and 0 <= saved.final["top1"] <= 100
    assert saved.throughput > 0 and saved.wall_time_s > 0 and saved.peak_memory_mb > 0
    assert saved.params > 0 and saved.flops > 0
    assert "dropout:layer4.0.downsample.1" in saved.placements
    assert saved.device == "cpu" and saved.ended_at


def test_failing_training_records_failed_with_the_error(make_cfg, tmp_path, monkeypatch):
    import runners.engine.trainer

    def crash(*args, **kwargs):
        raise FileNotFoundError("a class folder vanished during training")

    monkeypatch.setattr(runners.engine.trainer, "train_step", crash)
    job_dir = tmp_path / "job"
    with pytest.raises(FileNotFoundError):
        run_job(make_cfg(), JobContext(job_dir=job_dir))
    saved = load_record(job_dir)
    assert saved.status == "failed"
    assert saved.error.startswith("FileNotFoundError") and "class folder" in saved.error
    assert "Traceback" in saved.traceback
    assert saved.final == {} and saved.ended_at


def test_config_error_writes_no_record(make_cfg, tmp_path):
    from runners.config import ConfigError

    with pytest.raises(ConfigError):
        run_job(make_cfg("batch=10", "subdivisions=3"), JobContext(job_dir=tmp_path))
    assert not (tmp_path / RECORD_NAME).exists()


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the json module recurses
        b"[1, 2]",
        b'{"schema_version": 2, "code_version": "abc"}',
        b'{"schema_version": 2, "epochs": [5]}',
        b'{"schema_version": 2, "status": "done"}',
        b'{"schema_version": 99}',
    ],
)
def test_a_hostile_record_is_a_value_error_naming_the_file(tmp_path, content):
    (tmp_path / RECORD_NAME).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{RECORD_NAME}: "):
        load_record(tmp_path)
