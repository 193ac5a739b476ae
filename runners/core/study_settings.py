"""One Optuna study's settings, shared by the sweeper, its jobs and the study report.

The sweeper writes them to ``optuna_study.json`` in the study directory; a job launched for a
trial reads that file (its path comes in an environment variable) to open the same storage with
the same pruner, and ``python -m reports <study dir>`` reads it to find the study again.

Storage specs (``hydra.sweeper.storage``):

- ``null`` (default): the SQLite file ``optuna.db`` in the study directory; nothing to install;
- any SQLAlchemy URL Optuna accepts: ``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``
  (``pip install -e '.[postgres]'``), ``mysql+pymysql://...``;
- ``journal`` (``optuna.journal`` in the study directory), or ``journal:<path>``: Optuna's journal
  file, for shared file systems (NFS) where SQLite's locking does not work.

The settings file never holds a password: a URL given with one is stored without it
(``user@host``), and the processes that open the storage for the sweeper (its jobs) get it in
the environment variable :data:`PASSWORD_ENV`, which the sweeper sets (docs/OPTUNA.md,
"Passwords"). Reports open only a storage file inside the study directory unless a storage is
passed on their command line (:meth:`StudySettings.local_storage`).

Optuna is imported inside the functions, so reading the settings stays light.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runners.core.atomic_write import atomic_write
from runners.core.job_lock import report_lock
from runners.core.record import LOWER_IS_BETTER, task_metrics

__all__ = [
    "DIRECTIONS",
    "PASSWORD_ENV",
    "PRUNERS",
    "SAMPLERS",
    "SETTINGS_NAME",
    "StudySettings",
    "objective_metric",
]

SETTINGS_NAME = "optuna_study.json"
#: The storage's password, for the sweeper's jobs, when the storage URL was given with one.
PASSWORD_ENV = "ABLATION_OPTUNA_STORAGE_PASSWORD"
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DIRECTIONS = ("auto", "maximize", "minimize")
#: Seconds between a running trial's heartbeats, and how long without one makes it stale
#: (failed, so that a resumed study runs it again). RDB storages only.
HEARTBEAT_INTERVAL_S = 20
HEARTBEAT_GRACE_S = 120


def quiet_optuna() -> None:
    """Silence Optuna's notes that heartbeats and ask-and-tell are experimental; we use both on
    purpose (heartbeats outside ``Study.optimize`` are recorded by the sweeper)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def objective_metric(metric: str, task: str) -> str:
    """The metric a trial is scored by: ``auto`` is the task's primary metric (Top-1, or AP for
    ``task=detect``; ``runners.core.record.TASK_METRICS``)."""
    if metric != "auto":
        return metric
    return task_metrics(task).primary


def _check(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"hydra.sweeper.{key} must be one of {', '.join(options)}, got {value!r}")


@dataclass
class StudySettings:
    """Everything needed to reopen a study and score and prune its trials."""

    study_name: str
    storage: str
    metric: str = "auto"
    direction: str = "auto"
    n_trials: int = 20
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    #: Set when ``storage`` needs a password: the environment variable that holds it (always
    #: :data:`PASSWORD_ENV`; a settings file cannot name another variable).
    password_env: str | None = None

    def __post_init__(self) -> None:
        if self.password_env not in (None, PASSWORD_ENV):
            raise ValueError(
                f"password_env must be null or {PASSWORD_ENV}, got {self.password_env!r}"
            )
        _check("direction", self.direction, DIRECTIONS)
        _check("pruner.name", self.pruner.get("name", ""), PRUNERS)
        _check("sampler.name", self.sampler.get("name", ""), SAMPLERS)
        if self.n_trials < 1:
            raise ValueError(f"hydra.sweeper.n_trials must be >= 1, got {self.n_trials}")

    @staticmethod
    def resolve_storage(spec: str | None, study_dir: Path) -> str:
        """The storage spec with its default filled in and file paths made absolute."""
        study_dir = Path(study_dir).resolve()
        if spec is None or spec == "":
            return f"sqlite:///{study_dir / 'optuna.db'}"
        if spec == "journal":
            return f"journal:{study_dir / 'optuna.journal'}"
        if spec.startswith("journal:"):
            return f"journal:{Path(spec.removeprefix('journal:')).resolve()}"
        if "://" in spec:
            return spec
        from runners.core.redact import REDACTED, redact

        shown = redact(spec)
        if "@" in shown and REDACTED not in shown:  # user:password@host without a scheme
            shown = f"{REDACTED}@{shown.rsplit('@', 1)[1]}"
        raise ValueError(
            f"hydra.sweeper.storage must be null (SQLite in the study dir), a database URL "
            f"(sqlite:///..., postgresql://...), 'journal' or 'journal:<path>', got {shown!r}"
        )

    def local_storage(self, study_dir: str | os.PathLike[str]) -> str:
        """The study's storage if it is a file inside ``study_dir``; else :class:`ValueError`.

        What ``python -m reports`` opens when no storage is passed on its command line: a
        settings file is data, and a URL written in one must not make reports connect anywhere
        or read a file outside the directory they were given. A SQLite or journal file that
        lies elsewhere (a study directory copied to another place) is replaced by the one of
        the same kind inside the directory (``optuna.db``, ``optuna.journal``), if there is one.
        """
        root = Path(study_dir).resolve()
        kinds = {"sqlite:///": "optuna.db", "journal:": "optuna.journal"}
        for prefix, default in kinds.items():
            if not self.storage.startswith(prefix):
                continue
            named = Path(self.storage.removeprefix(prefix)).resolve()
            for candidate in (named, (root / default).resolve()):
                if candidate.is_relative_to(root) and candidate.is_file():
                    return f"{prefix}{candidate}"
        raise ValueError(
            f"{root / SETTINGS_NAME} names the storage {self.display()}, which is not a file "
            f"inside {root}; reports open only storage inside the directory they are given: "
            f"pass it with --storage URL to read the Optuna study"
        )

    @property
    def maximize(self) -> bool:
        """Whether larger is better (``direction: auto``: unless the metric is lower-is-better)."""
        if self.direction == "auto":
            return self.metric not in LOWER_IS_BETTER
        return self.direction == "maximize"

    def display(self) -> str:
        """The storage with any password hidden, as ``optuna-dashboard`` takes it (a journal is
        given as its file path)."""
        if self.storage.startswith("journal:"):
            return self.storage.removeprefix("journal:")
        from sqlalchemy.engine import make_url

        return make_url(self.storage).render_as_string(hide_password=True)

    def open_storage(self) -> Any:
        """The Optuna storage (an RDB with heartbeats, or a journal file)."""
        import optuna

        quiet_optuna()
        if self.storage.startswith("journal:"):
            path = self.storage.removeprefix("journal:")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
        url = self.storage
        if self.password_env is not None:
            from runners.core.redact import add_secret, with_password

            password = os.environ.get(self.password_env)
            if password is None:
                raise ValueError(
                    f"the Optuna storage {self.display()} needs its password in the environment "
                    f"variable {self.password_env}, which is not set (the sweeper sets it for "
                    f"its jobs; elsewhere use PGPASSWORD or ~/.pgpass, docs/OPTUNA.md)"
                )
            add_secret(password)
            url = with_password(url, password)
        engine_kwargs: dict[str, Any] = {}
        if self.storage.startswith("sqlite:"):
            # Several workers write one file: wait for SQLite's lock instead of failing at once.
            engine_kwargs["connect_args"] = {"timeout": 120}
            Path(self.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        else:
            engine_kwargs["pool_pre_ping"] = True
        import sqlalchemy.exc

        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=HEARTBEAT_GRACE_S,
                )
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
                # Workers that start together race to create the tables and the schema version.
                if attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    def make_pruner(self) -> Any:
        """``MedianPruner`` (default), ``HyperbandPruner`` or ``NopPruner``; other keys are its
        arguments."""
        import optuna

        kwargs = {k: v for k, v in self.pruner.items() if k != "name" and v is not None}
        name = self.pruner["name"]
        if name == "median":
            return optuna.pruners.MedianPruner(**kwargs)
        if name == "hyperband":
            return optuna.pruners.HyperbandPruner(**kwargs)
        return optuna.pruners.NopPruner()

    def make_sampler(self, worker: int = 0) -> Any:
        """TPE (default) or random; a set ``seed`` is offset by ``worker`` so that the processes
        of one command do not all sample the same points."""
        import optuna

        kwargs = {k: v for k, v in self.sampler.items() if k != "name"}
        if kwargs.get("seed") is not None:
            kwargs["seed"] = int(kwargs["seed"]) + worker
        if self.sampler["name"] == "random":
            return optuna.samplers.RandomSampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)

    def load_study(self, worker: int = 0) -> Any:
        """Create the study if it does not exist yet, else load it (``load_if_exists``)."""
        import optuna

        return optuna.create_study(
            study_name=self.study_name,
            storage=self.open_storage(),
            sampler=self.make_sampler(worker),
            pruner=self.make_pruner(),
            direction="maximize" if self.maximize else "minimize",
            load_if_exists=True,
        )

    def write(self, study_dir: Path) -> Path:
        """Write ``optuna_study.json`` into ``study_dir`` atomically; returns its path."""
        with report_lock(study_dir):  # other writers of the study dir may clean up meanwhile
            text = json.dumps(asdict(self), indent=2) + "\n"
            return atomic_write(Path(study_dir) / SETTINGS_NAME, text)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> StudySettings:
        """Read ``optuna_study.json`` (or the one inside a study directory)."""
        target = Path(path)
        if target.is_dir():
            target = target / SETTINGS_NAME
        if not target.is_file():
            raise FileNotFoundError(f"{target}: no Optuna study settings (not an Optuna study dir)")
        return cls(**json.loads(target.read_text()))
