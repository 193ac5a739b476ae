"""Regularizers: one file each, registered by name (:mod:`regularizers.registry`).

A file here defines a regularizer's schema (its ``regularizer.*`` keys), the rules of its keys
and what it places, and registers them as one :class:`~regularizers.registry.Regularizer`;
``conf/regularizer/<name>.yaml`` holds its values. Importing this package imports every such
file (no list to edit), so validation, placement, preflight, ``runners.dist`` and the reports
all know a new regularizer once its file exists (docs/DESIGN-NOTES.md, "Adding a regularizer").

Light to import: no torch (Hydra imports the schemas for ``--help`` and tab completion); the
layers are imported when something is placed or checked. Imports of the harness: ``layers``
and ``runners.core`` only.
"""

from __future__ import annotations

import importlib
import pkgutil

from regularizers.base import GroupRegularizerConfig, RegularizerConfig
from regularizers.registry import Regularizer, find, get, label, names, register, specs

__all__ = [
    "GroupRegularizerConfig",
    "Regularizer",
    "RegularizerConfig",
    "find",
    "get",
    "label",
    "names",
    "register",
    "specs",
]

#: The package's machinery; every other module is a regularizer.
_MACHINERY = {"base", "registry", "placement"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _MACHINERY and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
