"""The grid ``seeds=auto`` runs: its cells (every combination of the swept values but the seed)
and the seeds each cell gets, in order.

The overrides are parsed as Hydra's BasicSweeper parses them (its own parser and its
``split_arguments``): the study's ``hydra.sweeper.params`` first, then the command line. The key
``seed`` is taken out: its values are the starting seeds (0, 1, 2 when the sweep gives none),
and later rounds continue the sequence with the next unused numbers, so every cell always holds
a prefix of the same sequence and the cells stay paired.

A job is identified by its overrides minus the keys that do not change what it computes
(``hydra.job.config.override_dirname.exclude_keys``, the same keys its directory name leaves
out), so a record written by ``ablation=default`` without ``seeds=auto`` counts as the same job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runners.config import ConfigError
from runners.config.paths import override_key

__all__ = ["DEFAULT_SEEDS", "SEED_KEY", "Grid", "identity", "parse_grid", "seed_sequence"]

#: The starting seeds when the sweep names none.
DEFAULT_SEEDS = (0, 1, 2)
SEED_KEY = "seed"


def identity(overrides: Iterable[str], exclude_keys: Iterable[str]) -> tuple[str, ...]:
    """What makes a job (or a cell) the one it is: its overrides but the excluded keys, sorted."""
    excluded = set(exclude_keys)
    return tuple(sorted(line for line in overrides if override_key(line) not in excluded))


def seed_sequence(start: Sequence[int], length: int) -> list[int]:
    """The first ``length`` seeds: ``start``, then the next numbers above its largest."""
    seeds = list(start)[:length]
    following = max(start) + 1
    while len(seeds) < length:
        seeds.append(following)
        following += 1
    return seeds


@dataclass(frozen=True)
class Grid:
    """The cells (each a list of overrides without the seed) and the starting seeds."""

    cells: list[list[str]]
    seeds: list[int]

    def job(self, cell: Sequence[str], seed: int) -> list[str]:
        """The overrides of ``cell``'s job with ``seed``."""
        return [*cell, f"{SEED_KEY}={seed}"]


def _seed_values(override: Any) -> list[int]:
    """The seeds a ``seed=...`` override gives (one value or a sweep); integers, no repeats."""
    if override.is_sweep_override():
        if not override.is_discrete_sweep():
            raise ConfigError(
                "seed: seeds=auto takes a list of seeds (seed=0,1), not a range sweep"
            )
        texts = list(override.sweep_string_iterator())
    else:
        texts = [override.get_value_element_as_str()]
    try:
        seeds = [int(text) for text in texts]
    except ValueError:
        raise ConfigError(f"seed must be integers for seeds=auto, got {','.join(texts)}") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed: seeds=auto needs different seeds, got {','.join(texts)}")
    return seeds


def parse_grid(params: dict[str, Any], arguments: list[str], config_loader: Any) -> Grid:
    """The grid of ``params`` (``hydra.sweeper.params``) and the command line's ``arguments``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    parser = OverridesParser.create(config_loader=config_loader)
    overrides = parser.parse_overrides(lines)
    seeds = list(DEFAULT_SEEDS)
    rest = []
    for override in overrides:
        if override.get_key_element() == SEED_KEY:
            seeds = _seed_values(override)
        else:
            rest.append(override)
    try:
        (cells,) = BasicSweeper.split_arguments(rest, None)
    except HydraException as err:  # interval(...), a search: not a grid
        raise ConfigError(
            f"seeds=auto runs a grid (key=a,b,...); {err}. A search study (an Optuna sweeper) "
            "chooses its own trials: run it without seeds=auto"
        ) from None
    return Grid(cells=[list(cell) for cell in cells], seeds=seeds)
