"""Divergence: the guard's rules, and a sweep in which one job diverges and the other completes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners.core.record import load_record
from runners.engine.divergence import DivergedError, DivergenceGuard
from tests.conftest import run_cli


def _feed(guard: DivergenceGuard, values: list[float]) -> None:
    for value in values:
        guard.observe(torch.tensor(value))
    guard.flush()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_stops_even_without_a_factor(bad):
    guard = DivergenceGuard(factor=None, check_every=3)
    with pytest.raises(DivergedError, match=rf"training loss is {bad} at training forward 4"):
        _feed(guard, [2.3, 2.2, 2.1, bad, 2.0])


def test_loss_above_factor_times_the_first_stops():
    guard = DivergenceGuard(factor=10.0, check_every=1)
    _feed(guard, [2.0, 19.9, 5.0])  # 19.9 < 10 x 2.0: a spike, not a divergence
    with pytest.raises(
        DivergedError,
        match=r"20.1 at training forward 4 is above divergence.factor=10 x the first loss 2",
    ):
        _feed(guard, [20.1])


def test_factor_none_lets_large_finite_losses_pass():
    _feed(DivergenceGuard(factor=None), [1.0, 1e6, 1e30])


def test_losses_wait_for_the_check_and_epoch_end_flushes_them():
    guard = DivergenceGuard(factor=10.0, check_every=100)
    guard.observe(torch.tensor(1.0))  # the first loss is checked at once: it is the reference
    guard.observe(torch.tensor(math.nan))  # pending: no synchronisation yet
    assert guard.forwards == 1
    with pytest.raises(DivergedError, match="forward 2"):
        guard.flush()


def test_watched_criterion_returns_the_loss_and_observes_it():
    guard = DivergenceGuard(factor=10.0, check_every=1)
    criterion = guard.watch(torch.nn.CrossEntropyLoss())
    logits, target = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    assert criterion(logits, target).item() == pytest.approx(math.log(3))
    assert guard.start == pytest.approx(math.log(3))
    with pytest.raises(DivergedError):
        criterion(torch.full((4, 3), math.nan), target)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("divergence.factor=1", "divergence.factor must be > 1"),
        ("divergence.factor=nan", "divergence.factor must be > 1"),
        ("divergence.check_every=0", "divergence.check_every must be >= 1"),
    ],
)
def test_divergence_settings_are_validated(make_cfg, override, message):
    from runners.config import ConfigError, validate

    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))


def test_diverging_job_is_recorded_and_the_sweep_goes_on(tmp_path, data_cache):
    """Two jobs, one with a learning rate built to diverge: the other completes, RESULTS.md is
    written with the diverged job left out, the W&B run is tagged, and the command exits 1."""
    sweep = tmp_path / "sweep"
    command = [
        "-m", "optim.base_lr=0.1,1e6", "optim.warmup_epochs=0", "batch=8", "epochs=1",
        "data.train_per_class=6", "data.val_per_class=3", "device=cpu", "checkpoint.every_steps=1",
        "divergence.check_every=100", f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    result = run_cli(*command)
    assert result.returncode == 1, result.stderr[-3000:]
    records = {r.config["optim"]["base_lr"]: r for r in map(load_record, sweep.rglob("run.json"))}
    assert records[0.1].status == "completed"
    diverged = records[1e6]
    assert diverged.status == "diverged"
    assert (
        "above divergence.factor=10" in diverged.error or "training loss is nan" in diverged.error
    )
    assert diverged.traceback is None
    assert f"diverged: {diverged.job_dir}: {diverged.error}" in result.stderr

    text = (sweep / "RESULTS.md").read_text()
    assert "1 used, 1 left out (1 diverged)" in text and "| diverged |" in text

    runs = {read_offline_run(p).name: read_offline_run(p) for p in find_offline_runs(sweep)}
    marked = runs[diverged.run_name]
    assert "diverged" in marked.tags and marked.summary["status"] == "diverged"
    assert marked.exit_code == 1
    fine = runs[records[0.1].run_name]
    assert "diverged" not in fine.tags and fine.exit_code == 0

    # No checkpoint holds a step whose loss failed the check (the guard is flushed before every
    # save, even with check_every far above the steps taken).
    forward = int(re.search(r"at training forward (\d+)", diverged.error).group(1))
    saved = json.loads((Path(diverged.job_dir) / "checkpoint.json").read_text())
    assert saved["step"] < forward

    # The same command again: a diverged job is a final result, not resumed into "completed".
    again = run_cli(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already diverged" in again.stdout + again.stderr
    assert load_record(diverged.job_dir) == diverged
    assert "1 used, 1 left out (1 diverged)" in (sweep / "RESULTS.md").read_text()
