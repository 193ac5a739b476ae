"""Generic rules of one config key: one rule, one line naming the key, the rule and the value.

Shared by :mod:`runners.config.rules` and the regularizers' own rules (``regularizers/``), which
may import ``runners.core`` and nothing else of the runners.
"""

from __future__ import annotations

import difflib
import math

from runners.core.errors import ConfigError

__all__ = ["at_least", "check_range", "name_error", "one_of", "positive"]


def name_error(key: str, value: str, options: tuple[str, ...] | list[str]) -> ConfigError:
    """``key must be one of ..., got 'x'; did you mean ...?``"""
    close = difflib.get_close_matches(value, list(options), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"{key} must be one of {', '.join(sorted(options))}, got {value!r}{hint}")


def one_of(key: str, value: str, options: tuple[str, ...] | list[str]) -> None:
    if value not in options:
        raise name_error(key, value, options)


def at_least(key: str, value: int, low: int, unit: str = "") -> None:
    """``value >= low``; ``unit`` follows the bound in the message (``" forwards"``)."""
    if value < low:
        raise ConfigError(f"{key} must be >= {low}{unit}, got {value}")


def positive(key: str, value: float, rule: str = "> 0 and finite") -> None:
    """A finite ``value > 0``; ``rule`` is how the message states it."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key} must be {rule}, got {value}")


def check_range(key: str, value: float, low: float, high: float | None, high_open: bool) -> None:
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or value < low or too_high:
        upper = "∞)" if high is None else (f"{high})" if high_open else f"{high}]")
        raise ConfigError(f"{key} must be in [{low}, {upper}, got {value}")
