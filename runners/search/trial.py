"""The job's side of an Optuna trial: report each epoch's metric, stop when the pruner says so.

The Optuna sweeper (``runners.search.sweep``) launches each trial as an ordinary Hydra job and
sets two environment variables through ``hydra.job.env_set``, so any launcher (in-process,
joblib, submitit) carries them to wherever the job runs:

- :data:`ENV_SETTINGS`: the study's ``optuna_study.json`` (storage, study name, metric, pruner);
- :data:`ENV_TRIAL_ID`: the trial's storage id.

:func:`trial_from_env` returns ``None`` when they are absent (every job not launched by the
sweeper), so an ordinary run never imports Optuna. After each epoch :meth:`TrialReporter.report`
calls ``trial.report(value, epoch)`` and ``trial.should_prune()``, like Optuna's own examples, and
raises :class:`PrunedByOptuna` to stop; ``runners.job.run_job`` records its ``run_status``
(``pruned``) in ``run.json``. A non-finite metric or training loss stops the trial the same way,
so a diverged trial can never become the study's best.
"""

from __future__ import annotations

import math
import os
from typing import Any

from runners.core.record import RunRecord
from runners.core.study_settings import StudySettings, objective_metric

__all__ = ["ENV_SETTINGS", "ENV_TRIAL_ID", "PrunedByOptuna", "TrialReporter", "trial_from_env"]

ENV_SETTINGS = "ABLATION_OPTUNA_SETTINGS"
ENV_TRIAL_ID = "ABLATION_OPTUNA_TRIAL_ID"


class PrunedByOptuna(Exception):
    """The trial's pruner (or a non-finite metric) stopped the job; its record says ``pruned``."""

    run_status = "pruned"


class TrialReporter:
    """Reports a job's validation metric to its Optuna trial after every epoch."""

    def __init__(self, trial: Any, settings: StudySettings) -> None:
        self.trial = trial
        self.settings = settings

    @property
    def tags(self) -> list[str]:
        """W&B tags that find this trial: the study and the trial number."""
        return [f"optuna_study={self.settings.study_name}", f"trial={self.trial.number}"]

    def report(self, record: RunRecord) -> None:
        """Report the last epoch's metric; raise :class:`PrunedByOptuna` to stop the job."""
        epoch = record.epochs[-1]
        if not epoch.metrics:
            return  # an epoch that was not evaluated has nothing to report
        task = record.config.get("task", {}).get("name", "classify")
        metric = objective_metric(self.settings.metric, task)
        if metric not in epoch.metrics:
            raise ValueError(
                f"hydra.sweeper.metric {metric!r} is not a validation metric of this task; "
                f"epoch {epoch.epoch} has {', '.join(sorted(epoch.metrics)) or 'none'}"
            )
        value = epoch.metrics[metric]
        if not (math.isfinite(value) and math.isfinite(epoch.train_loss)):
            raise PrunedByOptuna(
                f"non-finite at epoch {epoch.epoch} ({metric}={value}, "
                f"train_loss={epoch.train_loss}); a diverged trial is never the best"
            )
        self.trial.report(value, epoch.epoch)
        if self.trial.should_prune():
            raise PrunedByOptuna(
                f"pruned by the {self.settings.pruner['name']} pruner at epoch {epoch.epoch} "
                f"({metric}={value:.4g})"
            )


def trial_from_env() -> TrialReporter | None:
    """The reporter for the trial this job is, or ``None`` when no sweeper launched it."""
    path, trial_id = os.environ.get(ENV_SETTINGS), os.environ.get(ENV_TRIAL_ID)
    if not path or not trial_id:
        return None
    import optuna

    settings = StudySettings.read(path)
    study = optuna.load_study(
        study_name=settings.study_name,
        storage=settings.open_storage(),
        pruner=settings.make_pruner(),
    )
    return TrialReporter(optuna.trial.Trial(study, int(trial_id)), settings)
