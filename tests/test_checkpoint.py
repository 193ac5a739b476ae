"""Checkpoints: a job killed with SIGKILL mid-epoch resumes and ends exactly where it would have."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from runners.checkpoint import LoopPosition, load_checkpoint, save_checkpoint
from runners.record import RunRecord, load_record
from runners.sampler import EpochShuffleSampler
from tests.conftest import ROOT, run_cli

#: 40 training images in batches of 4: 10 steps an epoch, a checkpoint after every one. DropBlock
#: and CBN both carry state (schedule position, statistics history) that must survive the kill.
RESUMABLE = [
    "epochs=2", "batch=4", "data.train_per_class=4", "data.val_per_class=2", "device=cpu",
    "logger=none", "regularizer=dropblock_cbn", "regularizer.groups.4.block_size=3",
    "regularizer.groups.3.block_size=3", "checkpoint.every_steps=1",
]  # fmt: skip


def test_sigkill_mid_epoch_then_same_command_resumes_to_identical_metrics(tmp_path, data_cache):
    args = [*RESUMABLE, f"data.cache_dir={data_cache}"]
    reference = run_cli(*args, f"hydra.run.dir={tmp_path / 'uninterrupted'}")
    assert reference.returncode == 0, reference.stderr[-3000:]

    job = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "run.py"), *args, f"hydra.run.dir={job}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    info = job / "checkpoint.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if info.is_file():
            position = json.loads(info.read_text())
            if position["epoch"] == 2 and position["step_in_epoch"] >= 3:
                break
        assert process.poll() is None, "the job ended before it could be killed mid-epoch"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = load_record(job)
    assert killed.status == "running" and len(killed.epochs) == 1  # nothing marked completed

    resumed = run_cli(*args, f"hydra.run.dir={job}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after, before = load_record(job), load_record(tmp_path / "uninterrupted")
    assert after.status == "completed"
    assert after.resumed_from["epoch"] == 2 and after.resumed_from["step"] > 10
    assert len(after.epochs) == len(before.epochs) == 2
    for ours, theirs in zip(after.epochs, before.epochs, strict=True):
        assert ours.train_loss == pytest.approx(theirs.train_loss, abs=1e-6, rel=0)
        for name, value in theirs.metrics.items():
            assert ours.metrics[name] == pytest.approx(value, abs=1e-6, rel=0), name
    for name, value in before.final.items():
        assert after.final[name] == pytest.approx(value, abs=1e-6, rel=0), name


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    record = RunRecord(config_hash="aaaa")
    save_checkpoint(
        tmp_path, model=model, optimizer=optimizer, position=LoopPosition(epoch=3), record=record
    )
    assert load_checkpoint(tmp_path, "aaaa")["position"]["epoch"] == 3
    assert load_checkpoint(tmp_path, "bbbb") is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_an_unreadable_checkpoint_is_an_error_naming_it(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"checkpoint\.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path, "aaaa")


def test_epoch_order_is_a_function_of_seed_and_epoch_and_can_start_midway():
    sampler = EpochShuffleSampler(10, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(full) == list(range(10)) and len(sampler) == 10
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full
    assert list(EpochShuffleSampler(10, seed=1).order(2)) == full
    with pytest.raises(ValueError, match="start must be"):
        sampler.set_epoch(1, start=11)
