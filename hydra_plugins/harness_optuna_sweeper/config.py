"""The sweeper's config schema, stored as ``hydra/sweeper: harness_optuna``.

Keys follow Hydra's published Optuna sweeper where they mean the same thing (``study_name``,
``storage``, ``direction``, ``n_trials``, ``n_jobs``, ``params``, ``sampler``); ``metric``,
``pruner`` and ``max_consecutive_failures`` are this project's.
"""

# No ``from __future__ import annotations``: Hydra's plugin scan executes this module outside
# ``sys.modules``, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class PrunerConf:
    """``median`` (Optuna's MedianPruner), ``hyperband`` or ``none``; the other keys are passed
    to the pruner when they apply to it (null = Optuna's default)."""

    name: str = "median"
    #: MedianPruner: trials that finish before pruning starts, and epochs never pruned.
    n_startup_trials: int | None = None
    n_warmup_steps: int | None = None
    #: HyperbandPruner: the smallest budget in epochs and the halving rate.
    min_resource: int | None = None
    reduction_factor: int | None = None


@dataclass
class SamplerConf:
    """``tpe`` (default) or ``random``; ``seed`` makes a single-worker study repeatable."""

    name: str = "tpe"
    seed: int | None = None


@dataclass
class HarnessOptunaSweeperConf:
    _target_: str = "hydra_plugins.harness_optuna_sweeper.optuna_sweeper.HarnessOptunaSweeper"
    #: The study in the storage; the harness's study name by default.
    study_name: str = "${study}"
    #: null = SQLite file ``optuna.db`` in the study dir; a database URL; ``journal[:<path>]``.
    storage: str | None = None
    #: ``auto``: Top-1 (``AP`` for ``task=detect``); or any validation metric of the task.
    metric: str = "auto"
    #: ``auto`` maximises, except ``loss``; or ``maximize`` / ``minimize``.
    direction: str = "auto"
    #: The study's total: trials complete, pruned or running, over every command that joins it.
    n_trials: int = 20
    #: Trials this command runs at once, each in its own process.
    n_jobs: int = 1
    max_consecutive_failures: int = 5
    pruner: PrunerConf = field(default_factory=PrunerConf)
    sampler: SamplerConf = field(default_factory=SamplerConf)
    #: The search space in Hydra's sweep syntax: ``key: interval(0, 0.3)``, ``choice(3, 5, 7)``.
    params: dict[str, Any] | None = None
    #: Trials to run first, each ``{key: value}`` (e.g. the paper's settings); added once per
    #: study, so a resumed study does not add them again.
    enqueue: list[dict[str, Any]] = field(default_factory=list)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="harness_optuna",
    node=HarnessOptunaSweeperConf,
    provider="ablation-harness",
)
