"""``backbone=darknet``: the cfg's ``[net] batch`` and ``subdivisions`` become the run's.

Darknet's ``batch`` is the samples per optimizer step and ``subdivisions`` the forwards it is
split into (``parse_net_options``: ``net->batch /= subdivs`` is the mini-batch), which is what the
harness's top-level ``batch`` and ``subdivisions`` mean (DESIGN.md, Vocabulary). A value given on
the command line (or by a sweep, which Hydra passes as an override) wins over the cfg's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omegaconf import DictConfig

from runners.config import ConfigError

__all__ = ["NET_KEYS", "adopt_net_options"]

log = logging.getLogger(__name__)

#: Top-level config keys that a cfg's [net] section provides.
NET_KEYS = ("batch", "subdivisions")


def _overridden(overrides: Sequence[str]) -> set[str]:
    keys = set()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        keys.add(key)
    return keys


def adopt_net_options(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, int]:
    """Set ``cfg.batch``/``cfg.subdivisions`` from the Darknet cfg unless ``overrides`` set them.

    Does nothing for other backbones or when ``backbone.cfg`` is unset (``validate`` reports it).

    Returns:
        The keys taken from the cfg and their values.
    """
    if cfg.backbone.name != "darknet" or not cfg.backbone.cfg:
        return {}
    from models.darknet.parse import DarknetCfgError, parse_cfg

    try:
        net = parse_cfg(cfg.backbone.cfg).net
    except DarknetCfgError as err:
        raise ConfigError(f"backbone.cfg: {err}") from None
    given = _overridden(overrides)
    adopted = {key: int(net[key]) for key in NET_KEYS if key not in given}
    for key, value in adopted.items():
        cfg[key] = value
    if adopted:
        log.info(
            "%s from %s [net] (give them on the command line to override)",
            ", ".join(f"{k}={v}" for k, v in adopted.items()),
            cfg.backbone.cfg,
        )
    return adopted
