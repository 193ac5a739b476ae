"""Checkpoints: a job killed with SIGKILL mid-epoch resumes and ends exactly where it would have.

The uninterrupted reference and the first run before a planted checkpoint run in this process
(``run_job``, as ``run.py`` calls it); the kill, the resume and the refusal are the real CLI's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from runners.core.record import CodeVersion, RunRecord, load_record
from runners.data.sampler import EpochShuffleSampler
from runners.engine.checkpoint import (
    CheckpointError,
    LoopPosition,
    load_checkpoint,
    save_checkpoint,
)
from runners.engine.divergence import DivergedError, DivergenceGuard
from runners.job import JobContext, run_job
from tests.conftest import ROOT, TINY, run_cli

TINY_ARGS = [*TINY, "checkpoint.every_steps=1"]

#: 40 training images in batches of 4: 10 steps an epoch, a checkpoint after every one. DropBlock
#: and CBN both carry state (schedule position, statistics history) that must survive the kill.
RESUMABLE = [
    "epochs=2", "batch=4", "data.train_per_class=4", "data.val_per_class=2", "device=cpu",
    "logger=none", "regularizer=dropblock_cbn", "regularizer.groups.4.block_size=3",
    "regularizer.groups.3.block_size=3", "checkpoint.every_steps=1",
]  # fmt: skip


def test_sigkill_mid_epoch_then_same_command_resumes_to_identical_metrics(
    tmp_path, data_cache, make_cfg
):
    args = [*RESUMABLE, f"data.cache_dir={data_cache}"]
    reference = run_job(make_cfg(*args), JobContext(job_dir=tmp_path / "uninterrupted"))
    assert reference.status == "completed"

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


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ours = CodeVersion(commit="a" * 40, dirty=False)
    record = RunRecord(config_hash="aaaa", code_version=ours)
    save_checkpoint(
        tmp_path, model=model, optimizer=optimizer, position=LoopPosition(), record=record
    )
    assert load_checkpoint(tmp_path, "aaaa", ours) is not None
    assert load_checkpoint(tmp_path, "aaaa", CodeVersion(commit="b" * 40, dirty=False)) is None
    assert load_checkpoint(tmp_path, "aaaa", CodeVersion()) is None  # unknown code: never


@pytest.mark.parametrize("content", [b"not a checkpoint", b"", b"PK\x03\x04 truncated zip"])
def test_an_unreadable_checkpoint_is_refused_naming_it(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: refused \(not a readable"):
        load_checkpoint(tmp_path, "aaaa")


@pytest.mark.parametrize(
    "payload",
    [[1, 2], {"version": 1}, {"version": 2, "config_hash": 3}, {"version": 2, "position": {}}],
)
def test_a_checkpoint_of_the_wrong_shape_is_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: refused"):
        load_checkpoint(tmp_path, "aaaa")


class _Exploit:
    """Pickles to a call of ``os.system``: what a crafted checkpoint would do on unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_never_runs_code_and_the_rerun_is_refused(
    tmp_path, data_cache, make_cfg
):
    """A job that failed, then someone plants a pickle bomb as its checkpoint: the rerun that
    would resume refuses the file in one line (exit 2), nothing runs, nothing is recorded."""
    job = tmp_path / "job"
    args = [*TINY_ARGS, f"data.cache_dir={data_cache}", f"hydra.run.dir={job}"]
    first = run_job(make_cfg(*TINY_ARGS), JobContext(job_dir=job))
    assert first.status == "completed" and (job / "checkpoint.pt").is_file()
    record = json.loads((job / "run.json").read_text())
    record["status"] = "failed"  # as if it had crashed: the rerun resumes from the checkpoint
    (job / "run.json").write_text(json.dumps(record))
    marker = tmp_path / "the-checkpoint-ran-code"
    torch.save({"version": 2, "model": _Exploit(marker)}, job / "checkpoint.pt")

    rerun = run_cli(*args)
    assert not marker.exists()
    assert rerun.returncode == 2, rerun.stderr[-3000:]
    errors = [line for line in rerun.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checkpoint.pt: refused" in errors[0], rerun.stderr[-3000:]
    assert "could run code" in errors[0]
    assert json.loads((job / "run.json").read_text()) == record  # untouched
    assert not (job / "history").exists()


def test_the_divergence_reference_survives_a_checkpoint():
    guard = DivergenceGuard(factor=10, check_every=5)
    for value in (2.0, 3.0):
        guard.observe(torch.tensor(value))
    guard.flush()
    resumed = DivergenceGuard(factor=10, check_every=5)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.start == 2.0 and resumed.forwards == 2
    resumed.observe(torch.tensor(25.0))  # 12.5x the first loss of the run, not of the resume
    with pytest.raises(DivergedError, match=r"above divergence\.factor"):
        resumed.flush()
    guard.observe(torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="flush"):
        guard.state_dict()  # a checkpoint needs every loss checked first


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


def test_the_epoch_order_and_rank_seeds_keep_their_formula():
    """Data order and rank seeds are part of what a seed means: pinned to the formula."""
    from runners.dist.distributed import _rank_seed

    expected = torch.randperm(10, generator=torch.Generator().manual_seed(1 * 1_000_003 + 2))
    assert list(EpochShuffleSampler(10, seed=1).order(2)) == expected.tolist()
    assert _rank_seed(7, 0) == 7 and _rank_seed(7, 3) == 7 * 1_000_003 + 3
