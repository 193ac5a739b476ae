"""Configuration: the schema per option, validation, hashing, preflight checks, Hydra's errors.

``runners.config.schema`` holds the structured configs and the hash, ``runners.config.rules``
the rules (generic ones per key, per-option ones in registries keyed by option name) and
``validate``; this package re-exports what callers use
(``from runners.config import ConfigError, validate``). The other modules are imported by path: ``runners.config.preflight`` (checks that read files or
build the model on the meta device), ``runners.config.hydra_errors``, ``runners.config.paths``,
``runners.config.darknet_net``.
"""

from runners.config.rules import validate
from runners.config.schema import (
    PRIMARY_METRIC,
    ConfigError,
    config_hash,
    register_configs,
    resolved_container,
)

__all__ = [
    "PRIMARY_METRIC",
    "ConfigError",
    "config_hash",
    "register_configs",
    "resolved_container",
    "validate",
]
