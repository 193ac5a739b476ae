"""The Optuna sweeper's logic (the Hydra plugin in ``hydra_plugins/harness_optuna_sweeper`` is a
thin shell around :class:`OptunaSweep`).

How one command runs a study:

1. the search space is parsed from ``hydra.sweeper.params`` and the command line
   (``runners.search.space``); the study is created in the storage, or loaded if it exists
   (``load_if_exists``), and its settings are written to ``<study dir>/optuna_study.json``;
2. ``n_jobs - 1`` copies of the same command start as extra worker processes (Hydra jobs share
   process-wide state, HydraConfig and logging, so concurrent trials need processes, not
   threads);
3. every worker loops: while fewer than ``n_trials`` trials are complete, pruned or running,
   ``ask`` a trial, launch it as one Hydra job (``trial_<number>/``, job number = trial number)
   through the configured launcher, read its ``run.json`` and ``tell`` the outcome: the metric
   (complete), ``pruned``, or ``fail`` for a crash, a missing record or a non-finite metric;
4. when all workers are done, the study summary is written (``reports.optuna_study``).

A password in the storage URL is taken out before anything is written: ``multirun.yaml``, the
jobs' ``.hydra/`` files and ``optuna_study.json`` get the URL as ``user:***@`` (or without it),
and the jobs read the password from the environment variable
``runners.core.study_settings.PASSWORD_ENV``, which this process sets and every launcher passes on.

Running the same command again (or on another machine against the same storage) joins the same
study: ``n_trials`` is the study's total, so a finished study launches nothing and an interrupted
one runs only what is missing. Failed trials do not count towards ``n_trials`` (a resumed study
runs them again as new trials); ``max_consecutive_failures`` stops a worker whose trials keep
failing. A trial left ``running`` by a killed worker is failed by the storage's heartbeat (RDB
storages) after two minutes.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from runners.app import sweep_outcome
from runners.config import ConfigError
from runners.core import redact
from runners.core.record import RECORD_NAME, load_record
from runners.core.study_settings import (
    HEARTBEAT_INTERVAL_S,
    PASSWORD_ENV,
    StudySettings,
    objective_metric,
)
from runners.search.space import SearchSpace, parse_search_space
from runners.search.trial import ENV_SETTINGS, ENV_TRIAL_ID

__all__ = ["ENV_WORKER", "OptunaSweep", "trial_dir_name"]

log = logging.getLogger(__name__)

#: Set in the extra worker processes a command starts for ``n_jobs > 1``.
ENV_WORKER = "ABLATION_OPTUNA_WORKER"


def trial_dir_name(number: int) -> str:
    """A trial's job directory inside the study directory."""
    return f"trial_{number:04d}"


def _quote(text: str) -> str:
    """``text`` as a single-quoted Hydra override value."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _share_cores(n_jobs: int) -> None:
    """Share the cores between ``n_jobs`` workers, as joblib's launcher does: OpenMP threads that
    outnumber the cores spin-wait and slow every worker down. A set ``OMP_NUM_THREADS`` wins."""
    if n_jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        threads = max(1, (os.cpu_count() or 1) // n_jobs)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the helper processes
        torch.set_num_threads(threads)


def _write_summary(study_dir: Path, settings: StudySettings, password: str | None) -> None:
    """Write the study summary (``reports.optuna_study``) and print where it is."""
    from reports.optuna_study import write_study_summary

    # Its own storage, from its command line: not the URL written in the settings file.
    storage = settings.storage
    if password is not None:
        storage = redact.with_password(storage, password)
    summary = write_study_summary(study_dir, storage=storage)
    print(f"optuna study: {summary}")


def _trial_job(trial: Any, space: SearchSpace, job_dir: Path, settings_path: Path) -> list[str]:
    """The overrides of the trial's Hydra job (its sampled values, its directory, and what
    ``runners.search.trial`` reads to find the study); also noted on the trial."""
    overrides = space.overrides(trial.params)
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("job_dir", str(job_dir))
    return [
        *overrides,
        f"hydra.sweep.subdir={trial_dir_name(trial.number)}",
        f"++hydra.job.env_set.{ENV_SETTINGS}={_quote(str(settings_path))}",
        f"++hydra.job.env_set.{ENV_TRIAL_ID}={trial._trial_id}",
    ]


def _tell(study: Any, trial: Any, state: Any, value: float | None, error: str | None) -> None:
    """Tell the study the trial's state and value (its error, if any, as a user attribute); a
    failure is printed."""
    from optuna.trial import TrialState

    if error:
        trial.set_user_attr("error", error)
    if state == TrialState.FAIL:
        print(f"trial {trial.number} failed: {error}", file=sys.stderr)
    study.tell(trial, value, state=state)
    log.info("trial %d: %s %s", trial.number, state.name.lower(), value if value else "")


class _Heartbeat:
    """Records the trial's heartbeat while its job runs, so a killed worker's trial goes stale."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        from optuna.storages._heartbeat import is_heartbeat_enabled

        self._stop = threading.Event()
        self._thread = None
        if is_heartbeat_enabled(storage):
            storage.record_heartbeat(trial_id)
            self._thread = threading.Thread(
                target=self._beat, args=(storage, trial_id), daemon=True
            )

    def _beat(self, storage: Any, trial_id: int) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            storage.record_heartbeat(trial_id)

    def __enter__(self) -> _Heartbeat:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class OptunaSweep:
    """Runs an Optuna study as Hydra jobs; see the module docstring for the steps."""

    def __init__(self, conf: DictConfig | dict[str, Any]) -> None:
        self.conf = conf if isinstance(conf, DictConfig) else OmegaConf.create(conf)
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep the composed config and instantiate the configured launcher."""
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def settings(self, study_dir: Path) -> tuple[StudySettings, str | None]:
        """The study's settings from the sweeper config (storage default filled in, any
        password taken out of its URL), and that password."""
        conf = OmegaConf.to_container(self.conf, resolve=True)
        try:
            storage = StudySettings.resolve_storage(conf.get("storage"), study_dir)
            storage, password = redact.split_password(storage)
        except ValueError as err:  # the message never holds the URL's password
            text = redact.redact(str(err))
            if not text.startswith("hydra.sweeper.storage"):
                text = f"hydra.sweeper.storage: {text}"
            raise ConfigError(text) from None
        settings = StudySettings(
            study_name=str(conf["study_name"]),
            storage=storage,
            metric=conf["metric"],
            direction=conf["direction"],
            n_trials=int(conf["n_trials"]),
            pruner=dict(conf["pruner"]),
            sampler=dict(conf["sampler"]),
            password_env=PASSWORD_ENV if password is not None else None,
        )
        return settings, password

    def _hide_secrets(self) -> None:
        """Redact the storage URL (and any other secret) in the config that Hydra passes on:
        ``multirun.yaml`` is saved from it, and every job's config is composed from its
        ``hydra.overrides.hydra``. Interpolations (``${oc.env:...}``) stay unresolved."""
        assert self.config is not None
        hydra = self.config.hydra
        raw = OmegaConf.to_container(hydra, resolve=False)
        lines = [redact.redact(str(line)) for line in raw["overrides"]["hydra"]]
        storage = raw["sweeper"].get("storage")
        with read_write(hydra), open_dict(hydra):
            hydra.overrides.hydra = lines
            if isinstance(storage, str):
                hydra.sweeper.storage = redact.redact(storage)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run this command's share of the study; returns the jobs' results as one batch."""
        assert self.config is not None and self.launcher is not None
        params = OmegaConf.to_container(self.conf.params, resolve=False) if self.conf.params else {}
        space = parse_search_space(params, arguments)
        study_dir = Path(self.config.hydra.sweep.dir).resolve()
        settings, password = self.settings(study_dir)
        n_jobs = int(self.conf.n_jobs)
        if n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_jobs must be >= 1, got {n_jobs}")
        if password is not None:
            os.environ[PASSWORD_ENV] = password  # for this process's jobs, on any launcher
        self._hide_secrets()
        study, settings_path = self._open_study(settings, study_dir)

        # A failed trial is recorded by the study; it does not make this command (or a worker
        # process of it) exit non-zero. Too many in a row stop the worker with an error.
        sweep_outcome.current().trials_may_fail()
        worker = int(os.environ.get(ENV_WORKER, "0"))
        _share_cores(n_jobs)
        helpers = [] if worker else self._start_helpers(n_jobs - 1, study_dir)
        try:
            returns = self._work(study, settings, space, study_dir, settings_path, worker)
        except BaseException:
            for helper in helpers:
                helper.terminate()
            raise
        failed_helpers = [h.args for h in helpers if h.wait() != 0]
        if not worker:
            _write_summary(study_dir, settings, password)
        if failed_helpers:
            raise RuntimeError(f"{len(failed_helpers)} worker process(es) of this study failed")
        return [returns]

    def _open_study(self, settings: StudySettings, study_dir: Path) -> tuple[Any, Path]:
        """Write ``multirun.yaml`` and the settings file into the study directory, create or
        load the study and enqueue the configured trials; returns the study and the settings
        file."""
        assert self.config is not None
        study_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, study_dir / "multirun.yaml")
        settings_path = settings.write(study_dir)
        study = settings.load_study()
        enqueue = self.conf.get("enqueue")
        for params in OmegaConf.to_container(enqueue, resolve=True) if enqueue else []:
            study.enqueue_trial(dict(params), skip_if_exists=True)
        log.info(
            "Optuna study %r in %s: %d trials, %s %s, pruner %s; dashboard: optuna-dashboard %s",
            settings.study_name, settings.display(), settings.n_trials,
            "maximize" if settings.maximize else "minimize",
            objective_metric(settings.metric, str(self.config.task.name)),
            settings.pruner["name"], settings.display(),
        )  # fmt: skip
        return study, settings_path

    def _start_helpers(self, count: int, study_dir: Path) -> list[subprocess.Popen]:
        """Start ``count`` copies of this command as extra workers on the same study."""
        command = [sys.executable, *sys.orig_argv[1:], f"hydra.sweep.dir={_quote(str(study_dir))}"]
        helpers = []
        for index in range(1, count + 1):
            env = {**os.environ, ENV_WORKER: str(index)}
            helpers.append(subprocess.Popen(command, env=env))
        if helpers:
            log.info("started %d extra worker process(es): n_jobs=%d", count, count + 1)
        return helpers

    def _work(
        self,
        study: Any,
        settings: StudySettings,
        space: SearchSpace,
        study_dir: Path,
        settings_path: Path,
        worker: int,
    ) -> list[JobReturn]:
        """Ask, launch and tell until the study holds ``n_trials`` counted trials."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        study.sampler = settings.make_sampler(worker)
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        returns: list[JobReturn] = []
        failures = 0
        max_failures = int(self.conf.max_consecutive_failures)
        while True:
            fail_stale_trials(study)
            if len(study.get_trials(deepcopy=False, states=counted)) >= settings.n_trials:
                break
            trial = self._ask(study, space, settings.n_trials, counted)
            if trial is None:
                break
            job_dir = study_dir / trial_dir_name(trial.number)
            job = _trial_job(trial, space, job_dir, settings_path)
            started = time.time()
            result, error = self._launch(study, trial, job)
            if result is None:
                state, value = TrialState.FAIL, None
            else:
                returns.append(result)
                state, value, error = self._outcome(job_dir, started, result, settings)
            _tell(study, trial, state, value, error)
            failures = failures + 1 if state == TrialState.FAIL else 0
            if failures >= max_failures:
                raise RuntimeError(
                    f"the last {failures} trials failed (hydra.sweeper.max_consecutive_failures="
                    f"{max_failures}); last error: {error}"
                )
        return returns

    @classmethod
    def _ask(cls, study: Any, space: SearchSpace, n_trials: int, counted: tuple[Any, ...]) -> Any:
        """A new trial from the study, or ``None`` when the study is already full (the trial is
        then told failed as surplus)."""
        from optuna.trial import TrialState

        trial = study.ask(space.distributions)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if cls._surplus(study, trial, n_trials, counted):
            # Another worker asked in the same instant and the study is full: give it up.
            trial.set_user_attr("error", "surplus: the study already had n_trials trials")
            study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _launch(
        self, study: Any, trial: Any, job: list[str]
    ) -> tuple[JobReturn | None, str | None]:
        """Run the trial's job through the launcher while its heartbeat is recorded; returns the
        job's result, or ``None`` and why when the job exited (a rejected config)."""
        from optuna.trial import TrialState

        assert self.launcher is not None
        try:
            with _Heartbeat(study._storage, trial._trial_id):
                (result,) = self.launcher.launch([job], initial_job_idx=trial.number)
        except SystemExit as err:
            # run.py exits with status 2 when a config is rejected (a sampled value out of
            # range); the trial fails and the study goes on.
            return (
                None,
                f"the job exited with status {err.code} (its config was rejected; see the log)",
            )
        except BaseException as err:  # KeyboardInterrupt: fail the trial, stop the worker
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL)
            raise
        return result, None

    @staticmethod
    def _surplus(study: Any, trial: Any, n_trials: int, counted: tuple[Any, ...]) -> bool:
        """Whether ``n_trials`` counted trials were asked before ``trial`` (a race between
        workers that counted at the same time)."""
        earlier = [
            t for t in study.get_trials(deepcopy=False, states=counted) if t.number < trial.number
        ]
        return len(earlier) >= n_trials

    @staticmethod
    def _outcome(
        job_dir: Path, started: float, result: JobReturn, settings: StudySettings
    ) -> tuple[Any, float | None, str | None]:
        """The trial's state, value and error, from the job's run record (and its return)."""
        from optuna.trial import TrialState

        path = job_dir / RECORD_NAME
        record = None
        if path.is_file() and path.stat().st_mtime >= started - 1:
            record = load_record(path)
        if record is None:
            error = result._return_value if result.status.name == "FAILED" else None
            if isinstance(error, ConfigError):  # rejected before anything ran (exit status 2)
                return TrialState.FAIL, None, f"its config was rejected: {error}"
            return TrialState.FAIL, None, f"no run record was written ({error!r})"
        if record.status == "pruned":
            return TrialState.PRUNED, None, record.error
        if record.status != "completed":
            return TrialState.FAIL, None, record.error or f"run status {record.status}"
        metric = objective_metric(settings.metric, record.config.get("task", {}).get("name", ""))
        value = record.final.get(metric)
        if value is None or not math.isfinite(value):
            return TrialState.FAIL, None, f"final {metric} is {value} (not a finite number)"
        return TrialState.COMPLETE, float(value), None
