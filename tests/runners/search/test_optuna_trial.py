"""The job's side of a trial: one report per evaluated epoch, pruning and non-finite values stop it."""

from __future__ import annotations

import optuna
import pytest

from runners.core.record import EpochMetrics, RunRecord
from runners.core.study_settings import StudySettings
from runners.search.trial import PrunedByOptuna, TrialReporter


def _reporter(metric="auto", pruner=None):
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    settings = StudySettings("s", "sqlite:///unused.db", metric=metric, pruner={"name": "median"})
    return study, TrialReporter(study.ask(), settings)


def _record(task, *epochs):
    record = RunRecord(config={"task": {"name": task}})
    for number, metrics in enumerate(epochs, start=1):
        record.epochs.append(EpochMetrics(number, 1.0, 0.1, 1.0, 1.0, metrics=metrics))
    return record


def test_detection_reports_ap_and_skips_epochs_without_evaluation():
    _, reporter = _reporter()
    record = _record("detect", {"AP": 10.0, "AP50": 20.0})
    reporter.report(record)
    record.epochs.append(EpochMetrics(2, 1.0, 0.1, 1.0, 1.0, metrics={}))
    reporter.report(record)
    record.epochs.append(EpochMetrics(3, 1.0, 0.1, 1.0, 1.0, metrics={"AP": 12.5}))
    reporter.report(record)
    assert reporter.trial.study.trials[0].intermediate_values == {1: 10.0, 3: 12.5}
    assert reporter.tags == ["optuna_study=s", "trial=0"]


def test_a_missing_metric_names_what_the_epoch_has():
    _, reporter = _reporter(metric="top1")
    with pytest.raises(ValueError, match=r"'top1' is not a validation metric.* AP, AP50"):
        reporter.report(_record("detect", {"AP": 1.0, "AP50": 2.0}))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_metric_stops_the_job_as_pruned(value):
    _, reporter = _reporter()
    with pytest.raises(PrunedByOptuna, match="non-finite at epoch 1") as err:
        reporter.report(_record("classify", {"top1": value}))
    assert err.value.run_status == "pruned"


def test_the_pruner_stops_a_worse_trial():
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    good = study.ask()
    good.report(50.0, 1)
    study.tell(good, 50.0)
    settings = StudySettings("s", "sqlite:///unused.db", pruner={"name": "median"})
    better = TrialReporter(study.ask(), settings)
    better.report(_record("classify", {"top1": 60.0}))  # above the median: goes on
    worse = TrialReporter(study.ask(), settings)
    with pytest.raises(PrunedByOptuna, match="median pruner at epoch 1"):
        worse.report(_record("classify", {"top1": 10.0}))
