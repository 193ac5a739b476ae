"""The sweeper's config schema, stored as ``hydra/sweeper: seeds_auto``.

``params`` is the BasicSweeper's (a study's grid, ``key: a,b,c``); the limits of the rounds are
``report.*`` keys of the job config (``report.target_halfwidth``, ``max_seeds``, ``max_jobs``,
``seeds_per_round``), so that a study sets them beside its other report settings.
"""

# No ``from __future__ import annotations``: Hydra's plugin scan executes this module outside
# ``sys.modules``, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SeedsAutoSweeperConf:
    _target_: str = "hydra_plugins.harness_seeds_sweeper.seeds_sweeper.SeedsAutoSweeper"
    #: The grid in the BasicSweeper's syntax; ``seed`` gives the starting seeds (default 0,1,2).
    params: dict[str, Any] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="seeds_auto",
    node=SeedsAutoSweeperConf,
    provider="ablation-harness",
)
