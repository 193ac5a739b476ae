"""The Hydra ``Sweeper`` shell; the logic is ``runners.seeds.sweep``, imported on first use so
that Hydra's plugin scan (which imports this module in every run) stays fast."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import SeedsAutoSweeperConf  # noqa: F401  (registers the config)


class SeedsAutoSweeper(Sweeper):
    """A grid whose cells get seeds until their comparisons are clear (``seeds=auto``)."""

    def __init__(self, **conf: Any) -> None:
        from runners.seeds.sweep import SeedsAutoSweep

        self._impl = SeedsAutoSweep(conf)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self._impl.sweep(arguments)
