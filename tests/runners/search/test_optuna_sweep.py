"""The Optuna sweeper through the real CLI, on a real SQLite file, with real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners.core.record import load_record
from runners.core.study_settings import StudySettings
from tests.conftest import ROOT, run_cli

TINY_CLI = ["data.train_per_class=6", "data.val_per_class=3", "device=cpu"]
#: The study file's four parameters less group 3's, fixed here: a search over p x block size.
TWO_PARAMS = ["regularizer.groups.3.p=0.025", "regularizer.groups.3.block_size=3"]


def _load(study_dir):
    settings = StudySettings.read(study_dir)
    return optuna.load_study(study_name=settings.study_name, storage=settings.storage)


def _without_surplus(trials):
    """The study's trials minus "surplus" ones: when two workers ask for the last slot in the same
    instant, the later one records its trial as failed (reason "surplus") and never launches it."""
    surplus = [t for t in trials if "surplus" in t.user_attrs.get("error", "")]
    assert all(t.state == TrialState.FAIL for t in surplus)
    return [t for t in trials if t not in surplus]


def _study_command(study_dir, data_cache, *extra):
    return [
        "-m", "ablation=dropblock_search", "epochs=1", *TINY_CLI, "logger=none", *TWO_PARAMS,
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={study_dir}", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def study6(tmp_path_factory, data_cache):
    """Six trials over two parameters, run by one command with n_jobs=2, then run again."""
    study_dir = tmp_path_factory.mktemp("optuna") / "dropblock_search"
    command = _study_command(
        study_dir, data_cache, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2"
    )
    first = run_cli(*command)
    second = run_cli(*command)
    return study_dir, first, second


def test_a_study_of_six_trials_over_two_parameters(study6):
    study_dir, first, _ = study6
    assert first.returncode == 0, first.stderr[-3000:]
    study = _load(study_dir)
    everything = study.get_trials()
    numbers = [t.number for t in everything]
    assert sorted(numbers) == list(range(len(numbers))), "no trial number twice"
    trials = _without_surplus(everything)
    assert len(trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(
        set(t.params) == {"regularizer.groups.4.p", "regularizer.groups.4.block_size"}
        for t in trials
    )
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "n_jobs=2: two worker processes"
    for trial in trials:
        record = load_record(study_dir / f"trial_{trial.number:04d}")
        assert record.status == "completed" and record.study == "dropblock_search"
        groups = record.config["regularizer"]["groups"]
        assert groups["4"]["p"] == trial.params["regularizer.groups.4.p"]
        assert groups["4"]["block_size"] == trial.params["regularizer.groups.4.block_size"]
        assert groups["3"]["p"] == 0.025 and groups["3"]["block_size"] == 3
        assert trial.value == record.final["top1"]
        assert list(trial.intermediate_values) == [1], "one report per epoch"

    for name in ("optimization_history.png", "param_importances.png", "contour.png"):
        assert (study_dir / name).stat().st_size > 1000, name
    table = (study_dir / "TRIALS.md").read_text()
    assert (
        len([line for line in table.splitlines() if line.startswith("| ") and "complete" in line])
        == 6
    )
    assert (study_dir / "RESULTS.md").is_file()
    assert f"optuna study: {study_dir / 'TRIALS.md'}" in first.stdout


def test_the_same_command_again_resumes_and_adds_nothing(study6):
    study_dir, _, second = study6
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(_without_surplus(_load(study_dir).trials)) == 6
    assert "Launching" not in second.stderr + second.stdout
    assert len(list(study_dir.glob("trial_*"))) == 6


def test_the_best_override_line_reproduces_the_best_trial(study6, tmp_path):
    study_dir, _, _ = study6
    study = _load(study_dir)
    best = yaml.safe_load((study_dir / "best_params.yaml").read_text())
    assert best["trial"] == study.best_trial.number
    assert best["value"] == study.best_value
    line = (study_dir / "best_overrides.txt").read_text().split()
    assert line == best["overrides"]
    result = run_cli(*line, f"hydra.run.dir={tmp_path / 'again'}")
    assert result.returncode == 0, result.stderr[-3000:]
    again = load_record(tmp_path / "again")
    original = load_record(study_dir / f"trial_{best['trial']:04d}")
    assert again.config_hash == original.config_hash
    assert again.final["top1"] == original.final["top1"], "deterministic on the CPU"


def test_two_processes_share_one_study(tmp_path, data_cache):
    study_dir = tmp_path / "shared"
    extra = ("hydra.sweeper.n_trials=4", "hydra.sweeper.pruner.name=none")
    command = [sys.executable, str(ROOT / "run.py"), *_study_command(study_dir, data_cache, *extra)]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "WANDB_SILENT": "true"}
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    trials = _load(study_dir).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    assert len(complete) == 4, "n_trials is the study's total, not per process"
    assert all("surplus" in t.user_attrs.get("error", "") for t in trials if t not in complete)
    assert len({t.user_attrs["worker"] for t in complete}) == 2, "both processes ran trials"
    assert {p.name for p in study_dir.glob("trial_*")} == {
        f"trial_{t.number:04d}" for t in complete
    }


PRUNE_CASE = """\
# @package _global_
# Built to be pruned, scored by validation loss (minimised): the good trial runs first; then
# lr 30 ends epoch 1 at about twice its loss (4.5 against 2.3 on these images), below the median
# of one finished trial, so it is pruned; lr -1 is rejected by the config check (the trial fails,
# does not count towards n_trials, and the study goes on); lr 1e6 makes the loss NaN at epoch 1.
defaults:
  - override /hydra/sweeper: harness_optuna
study: prune_case
epochs: 2
optim: {warmup_epochs: 0}
hydra:
  sweeper:
    n_trials: 3
    metric: loss
    pruner: {name: median, n_startup_trials: 1, n_warmup_steps: 0}
    params:
      optim.base_lr: choice(0.0001, 30.0, -1.0, 1000000.0)
    enqueue:
      - {optim.base_lr: 0.0001}
      - {optim.base_lr: 30.0}
      - {optim.base_lr: -1.0}
      - {optim.base_lr: 1000000.0}
"""


def test_a_case_built_to_be_pruned_is_pruned(tmp_path, data_cache):
    (tmp_path / "conf" / "ablation").mkdir(parents=True)
    (tmp_path / "conf" / "ablation" / "prune_case.yaml").write_text(textwrap.dedent(PRUNE_CASE))
    study_dir = tmp_path / "prune_case"
    result = run_cli(
        "-m", "ablation=prune_case", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", *TINY_CLI,
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={study_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(_load(study_dir).get_trials(), key=lambda t: t.number)
    assert [t.state for t in trials] == [
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.PRUNED,
    ]  # fmt: skip
    assert "config was rejected" in trials[2].user_attrs["error"]
    assert "optim.base_lr must be > 0 and finite, got -1.0" in result.stderr
    records = [load_record(study_dir / f"trial_{t.number:04d}") for t in trials if t.number != 2]
    assert [r.status for r in records] == ["completed", "pruned", "pruned"]
    assert [len(r.epochs) for r in records] == [2, 1, 1], "a pruned job stops early"
    assert "pruned by the median pruner at epoch 1" in records[1].error
    assert "non-finite" in records[2].error
    assert _load(study_dir).best_trial.number == 0, "a NaN trial is never the best"

    # Every trial is an ordinary run: a W&B run grouped by study, tagged with its trial.
    runs = [read_offline_run(p) for p in find_offline_runs(study_dir)]
    trial_tags = sorted(tag for r in runs for tag in r.tags if tag.startswith("trial="))
    assert trial_tags == ["trial=0", "trial=1", "trial=3"]
    assert all(r.group == "prune_case" for r in runs)


def test_bad_search_space_is_one_clear_error(tmp_path, data_cache):
    result = run_cli(
        *_study_command(tmp_path / "bad", data_cache, "regularizer.groups.4.p=interval(0.5,0.1)")
    )
    assert result.returncode != 0
    assert "regularizer.groups.4.p='interval(0.5,0.1)'" in result.stderr
    assert "low <= high" in result.stderr
    assert not list((tmp_path / "bad").glob("trial_*"))


def test_python_m_reports_rewrites_the_study_summary(study6, capsys):
    from reports.__main__ import main  # what `python -m reports` runs, in this process

    study_dir, _, _ = study6
    for name in ("TRIALS.md", "best_overrides.txt", "contour.png"):
        (study_dir / name).unlink()
    assert main([str(study_dir)]) == 0
    assert str(study_dir / "TRIALS.md") in capsys.readouterr().out
    for name in ("TRIALS.md", "best_overrides.txt", "contour.png", "RESULTS.md"):
        assert (study_dir / name).is_file(), name
