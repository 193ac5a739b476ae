"""Search space: Hydra's sweep syntax turned into Optuna distributions.

A study file writes its space the way Hydra's own Optuna sweeper does (``hydra.sweeper.params``),
and command-line overrides use the same syntax:

=============================================  ==============================================
``interval(0.0, 0.3)``                         float in [0.0, 0.3]
``int(interval(1, 7))``                        integer in [1, 7]
``tag(log, interval(1e-4, 1e-1))``             float on a log scale (also with ``int(...)``)
``choice(3, 5, 7)`` or ``3,5,7``               categorical
``range(1, 8, 2)``                             integers 1, 3, 5, 7 (stop excluded, as Hydra's
                                               basic sweeper counts it); floats give a stepped
                                               float; ``shuffle(range(...))`` is categorical
anything else (``epochs=3``)                   a fixed override passed to every trial
=============================================  ==============================================

A command-line override of a key replaces the study file's entry for it (a plain value there
fixes the parameter). Every error is one :class:`SearchSpaceError` naming the key and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException

__all__ = ["SearchSpace", "SearchSpaceError", "format_value", "parse_search_space"]


class SearchSpaceError(ValueError):
    """A search-space entry that cannot become an Optuna distribution."""


@dataclass
class SearchSpace:
    """The distributions to sample (by config key) and the overrides every trial gets."""

    distributions: dict[str, Any]
    fixed: list[str]

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The job's overrides for sampled ``params``: the fixed ones, then one per parameter."""
        return [*self.fixed, *(f"{k}={format_value(v)}" for k, v in params.items())]


def format_value(value: Any) -> str:
    """A sampled value as Hydra override text that parses back to the same value."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _where(key: str, text: str, source: str) -> str:
    return f"{source}{key}={text!r}"


def _distribution(override: Override, text: str, source: str) -> Any:
    """One sweep override as an Optuna distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    where = _where(key, text, source)
    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = list(value.list)
        bad = [c for c in choices if not isinstance(c, (bool, int, float, str, type(None)))]
        if bad or not choices:
            raise SearchSpaceError(
                f"{where}: choice() needs one or more plain values (numbers, strings, booleans)"
            )
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if value.shuffle:
            choices = list(override.sweep_iterator())
            if not choices:
                raise SearchSpaceError(f"{where}: the range is empty")
            return CategoricalDistribution(choices)
        if step is None or step <= 0:
            raise SearchSpaceError(f"{where}: range() needs a step > 0")
        count = math.ceil((stop - start) / step)
        if count < 1:
            raise SearchSpaceError(f"{where}: the range is empty (stop is excluded)")
        high = start + (count - 1) * step
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(int(start), int(high), step=int(step))
        return FloatDistribution(float(start), float(high), step=float(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        low, high = value.start, value.end
        if low > high:
            raise SearchSpaceError(f"{where}: interval() needs low <= high, got {low} > {high}")
        if log and low <= 0:
            raise SearchSpaceError(f"{where}: tag(log, ...) needs a lower bound > 0, got {low}")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise SearchSpaceError(
        f"{where}: {type(value).__name__} is not a search space; use interval(), "
        "int(interval()), tag(log, interval()), choice() or range()"
    )


def _parse(parser: OverridesParser, key: str, text: str, source: str) -> Override:
    try:
        (override,) = parser.parse_overrides([f"{key}={text}"])
    except HydraException as err:
        first_line = str(err).splitlines()[0]
        raise SearchSpaceError(
            f"{_where(key, text, source)}: not valid sweep syntax ({first_line})"
        ) from None
    return override


def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Iterable[str] = ()
) -> SearchSpace:
    """Combine the study file's ``params`` with the command line's ``arguments``.

    Args:
        params: ``hydra.sweeper.params`` (key -> sweep text or plain value).
        arguments: the command line's task overrides (``key=value``), which win per key.

    Returns:
        The distributions (in the order the keys were given) and the fixed overrides.
    """
    parser = OverridesParser.create()
    entries: dict[str, tuple[Override, str, str]] = {}
    for key, value in (params or {}).items():
        text = format_value(value) if not isinstance(value, str) else value
        source = "hydra.sweeper.params."
        entries[str(key)] = (_parse(parser, str(key), text, source), text, source)
    for argument in arguments:
        try:
            (override,) = parser.parse_overrides([argument])
        except HydraException as err:
            raise SearchSpaceError(
                f"command-line override {argument!r}: {str(err).splitlines()[0]}"
            ) from None
        key = override.get_key_element()
        entries.pop(key, None)  # re-insert so the command line's order is kept
        entries[key] = (override, argument.split("=", 1)[-1], "")

    distributions: dict[str, Any] = {}
    fixed: list[str] = []
    for key, (override, text, source) in entries.items():
        if override.is_sweep_override():
            distributions[key] = _distribution(override, text, source)
        else:
            fixed.append(override.input_line or f"{key}={text}")
    if not distributions:
        raise SearchSpaceError(
            "the Optuna sweeper needs at least one parameter to search: set hydra.sweeper.params "
            "or give a sweep override such as regularizer.groups.4.p='interval(0,0.3)'"
        )
    return SearchSpace(distributions, fixed)
