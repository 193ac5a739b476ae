"""The regularizers the harness knows: one :class:`Regularizer` entry per name.

An entry holds everything the rest of the harness asks about a regularizer: its schema (the
``regularizer.*`` keys, stored in Hydra's ConfigStore as ``base_regularizer_<name>`` by
``runners.config.register_configs``), the rules of its keys (``runners.config.rules``), what it
places into a backbone (``regularizers.placement``), whether it places blocks whose size must
fit the feature maps (``runners.config.preflight``) or turns BatchNorm into Cross-Iteration BN
(``runners.dist``: not with SyncBatchNorm), and its row in the reports (label, order).

Light to import (no torch, no Hydra): reports import it for the row order and labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from regularizers.base import RegularizerConfig

__all__ = ["Regularizer", "find", "get", "label", "names", "register", "specs"]

#: A rule over the ``regularizer`` section; raises ``ConfigError`` naming the key.
Rule = Callable[[Any], None]
#: A placement step: (``regularizers.placement.Target``, the regularizer's options) -> the
#: ``kind:path`` of every change it made to the model.
Step = Callable[[Any, Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Regularizer:
    """One regularizer, as every part of the harness sees it."""

    #: What ``regularizer=<name>`` selects; ``conf/regularizer/<name>.yaml`` holds its values.
    name: str
    #: Its dataclass: :class:`RegularizerConfig` or a subclass adding its own keys.
    schema: type[RegularizerConfig]
    #: How the reports name its row (the name itself when empty).
    label: str = ""
    #: Row position in the reports; ties (and regularizers not registered) go by name.
    order: int = 100
    #: The rules of its own keys, run after ``regularizer.name`` is known and before the groups'.
    rules: tuple[Rule, ...] = ()
    #: What it places, in order; none: nothing is placed (``regularizer=none``).
    steps: tuple[Step, ...] = ()
    #: It places blocks of ``groups.<g>.block_size``, which preflight checks against the maps.
    places_blocks: bool = False
    #: It turns BatchNorm into Cross-Iteration BN (per-process statistics: no SyncBatchNorm).
    converts_bn: bool = False

    @property
    def keys(self) -> frozenset[str]:
        """Every key of its composed ``regularizer`` section."""
        return frozenset(f.name for f in dataclasses.fields(self.schema))


_REGISTRY: dict[str, Regularizer] = {}


def register(spec: Regularizer) -> Regularizer:
    """Add ``spec``; a second entry under one name is an error. Returns ``spec``."""
    if not spec.name.isidentifier():
        raise ValueError(f"a regularizer's name must be a plain identifier, got {spec.name!r}")
    if spec.name in _REGISTRY:
        raise ValueError(f"regularizer {spec.name!r} is already registered")
    if not (dataclasses.is_dataclass(spec.schema) and issubclass(spec.schema, RegularizerConfig)):
        raise TypeError(
            f"regularizer {spec.name!r}: schema must be a dataclass subclassing "
            f"RegularizerConfig, got {spec.schema!r}"
        )
    _REGISTRY[spec.name] = spec
    return spec


def find(name: str) -> Regularizer | None:
    """The entry named ``name``, or None."""
    return _REGISTRY.get(name)


def get(name: str) -> Regularizer:
    """The entry named ``name``; ``KeyError`` listing the registered names otherwise."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise KeyError(f"unknown regularizer {name!r}; registered: {', '.join(names())}")
    return spec


def specs() -> tuple[Regularizer, ...]:
    """Every entry, in report order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name)))


def names() -> tuple[str, ...]:
    """Every registered name, in report order."""
    return tuple(spec.name for spec in specs())


def label(name: object) -> str:
    """How reports show the regularizer ``name`` (an unknown name as it is)."""
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    return (spec.label or spec.name) if spec is not None else str(name)
