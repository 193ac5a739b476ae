"""The ``seeds=auto`` sweeper's logic (the Hydra plugin in ``hydra_plugins/harness_seeds_sweeper``
is a thin shell around :class:`SeedsAutoSweep`).

1. The grid is parsed as the BasicSweeper parses it (:mod:`runners.seeds.grid`); round 1 is
   every cell with the starting seeds, one ordinary batch on the configured launcher.
2. After each round the records of the jobs launched so far are read and analysed as RESULTS.md
   analyses them (:mod:`runners.seeds.decide`); the cells of the open comparisons get the next
   seeds, as the next batch; ``seeds_auto.json`` is written (atomically) into the study dir.
3. It stops when no comparison is open, when every cell that needs seeds has
   ``report.max_seeds``, when the next round would pass ``report.max_jobs``, or when a job of
   the round did not complete (no seeds are added on top of a failure).

Running the same command again replays the rounds: the harness skips every job already
completed with the same config and code, and each round's decision reads only the records of
the jobs launched up to it, so the same records give the same rounds and the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from runners.config import ConfigError
from runners.config.rules import check_seeds_keys
from runners.core.record import RunRecord
from runners.core.seed_rounds import SeedRounds
from runners.seeds.decide import Plan, SeedLimits, cell_of_run, open_comparisons, plan_round
from runners.seeds.grid import Grid, identity, parse_grid, seed_sequence

__all__ = ["SeedsAutoSweep"]

log = logging.getLogger(__name__)


@dataclass
class _State:
    """The jobs launched so far: identity -> (cell label, seed), and seeds per cell."""

    exclude: tuple[str, ...]
    jobs: dict[tuple[str, ...], tuple[str, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def label(self, cell: Sequence[str]) -> str:
        return ",".join(identity(cell, self.exclude))

    def add(self, grid: Grid, cell: Sequence[str], seeds: Sequence[int]) -> list[list[str]]:
        """Note ``seeds`` for ``cell``; returns their jobs' overrides."""
        label = self.label(cell)
        batch = []
        for seed in seeds:
            job = grid.job(cell, seed)
            self.jobs[identity(job, self.exclude)] = (label, seed)
            batch.append(job)
        self.counts[label] = self.counts.get(label, 0) + len(seeds)
        return batch


def _limits(report: Any) -> SeedLimits:
    check_seeds_keys(report)
    return SeedLimits(
        target_halfwidth=float(report.target_halfwidth),
        max_seeds=int(report.max_seeds),
        max_jobs=None if report.max_jobs is None else int(report.max_jobs),
        seeds_per_round=int(report.seeds_per_round),
    )


class SeedsAutoSweep:
    """Runs a grid in rounds of seeds; see the module docstring."""

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

    def _options(self, study_dir: Path) -> Any:
        from reports.options import ReportOptions
        from runners.app.callbacks import study_report_options

        return ReportOptions(**study_report_options(self.config, study_dir), plots=False)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run the rounds; returns each round's results as one batch."""
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        params = OmegaConf.to_container(self.conf.params, resolve=False) if self.conf.params else {}
        grid = parse_grid(params, arguments, self.hydra_context.config_loader)
        limits = _limits(self.config.report)
        first = len(grid.cells) * len(grid.seeds)
        if limits.max_jobs is not None and first > limits.max_jobs:
            raise ConfigError(
                f"report.max_jobs={limits.max_jobs} is less than the first round's {first} jobs "
                f"({len(grid.cells)} cells x {len(grid.seeds)} seeds)"
            )
        study_dir = Path(self.config.hydra.sweep.dir).resolve()
        study_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, study_dir / "multirun.yaml")
        exclude = tuple(self.config.hydra.job.config.override_dirname.exclude_keys or ())
        state = _State(exclude)
        rounds = SeedRounds(
            metric="", target_halfwidth=limits.target_halfwidth, max_seeds=limits.max_seeds,
            max_jobs=limits.max_jobs, cells=len(grid.cells),
        )  # fmt: skip
        return self._rounds(grid, limits, state, rounds, study_dir)

    def _rounds(
        self, grid: Grid, limits: SeedLimits, state: _State, rounds: SeedRounds, study_dir: Path
    ) -> list[Sequence[JobReturn]]:
        """Launch round after round until a plan stops; write the rounds file after each."""
        assert self.launcher is not None
        cells = {state.label(cell): cell for cell in grid.cells}
        sequence = seed_sequence(grid.seeds, max(limits.max_seeds, len(grid.seeds)))
        add = {label: list(grid.seeds) for label in cells}
        returns: list[Sequence[JobReturn]] = []
        launched = 0
        while True:
            batch = [job for label, s in add.items() for job in state.add(grid, cells[label], s)]
            log.info(
                "seeds=auto round %d: %d jobs in %d cells", len(returns) + 1, len(batch), len(add)
            )
            results = self.launcher.launch(batch, initial_job_idx=launched)
            for result in results:
                _ = result.return_value  # re-raises a job's exception, as the BasicSweeper does
            returns.append(results)
            launched += len(batch)
            rounds.rounds.append(add)
            plan = self._decide(study_dir, state, batch, sequence, limits, launched, rounds)
            rounds.write(study_dir)
            if plan.stopped:
                break
            add = plan.add
        print(f"seeds=auto: stopped after {len(returns)} round(s): {rounds.reason}")
        return returns

    def _decide(
        self, study_dir: Path, state: _State, batch: list[list[str]], sequence: list[int],
        limits: SeedLimits, launched: int, rounds: SeedRounds,
    ) -> Plan:  # fmt: skip
        """Read the records of the jobs launched so far and plan the next round (noting the
        metric, and when it stops the reason and the open comparisons, in ``rounds``)."""
        from reports.collect import load_records, runs_table

        records = load_records([study_dir], epochs=False, unreadable=[])
        mine = {identity(r.overrides, state.exclude): r for r in records}
        mine = {k: r for k, r in mine.items() if k in state.jobs}
        plan = _failures(batch, mine, state.exclude, len(rounds.rounds))
        options = self._options(study_dir)
        runs = runs_table(list(mine.values()))
        metric, found = open_comparisons(runs, options, limits.target_halfwidth)
        rounds.metric = metric
        if plan is None:
            needing = _needing_cells(runs, found, mine, state, options)
            plan = plan_round(
                needing, state.counts, sequence, limits, launched, metric=metric, n_open=len(found)
            )
        if plan.stopped:
            rounds.stopped, rounds.reason = plan.stopped, plan.reason
            rounds.open = [c.text for c in found]
        return plan


def _failures(
    batch: list[list[str]], mine: dict[tuple[str, ...], RunRecord], exclude: Sequence[str],
    round_number: int,
) -> Plan | None:  # fmt: skip
    """A stop when a job of the round has no completed record; else ``None``."""
    bad = []
    for job in batch:
        record = mine.get(identity(job, exclude))
        if record is None or record.status != "completed":
            bad.append(
                f"{','.join(identity(job, exclude))}: {record.status if record else 'no record'}"
            )
    if not bad:
        return None
    shown = "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else "")
    reason = (
        f"{len(bad)} of {len(batch)} jobs of round {round_number} did not complete ({shown}); "
        "no seeds are added on top of a failure"
    )
    return Plan(stopped="failed", reason=reason)


def _needing_cells(
    runs: Any, found: list, mine: dict[tuple[str, ...], RunRecord], state: _State, options: Any
) -> set[str]:
    """The grid cells (labels) whose runs fall in a cell of an open comparison."""
    from reports.analysis import SETTING_KEYS

    wanted = {cell for comparison in found for cell in comparison.cells}
    by_dir = {r.job_dir: state.jobs[k][0] for k, r in mine.items()}
    needing = set()
    for _, row in runs.iterrows():
        if cell_of_run(row, SETTING_KEYS, options) in wanted and row["job_dir"] in by_dir:
            needing.add(by_dir[row["job_dir"]])
    return needing
