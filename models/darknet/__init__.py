"""Darknet ``.cfg`` networks: parse, build, print Darknet's layer table, read/write ``.weights``."""

from models.darknet.build import DarknetNet, LayerInfo
from models.darknet.parse import DarknetCfg, DarknetCfgError, parse_cfg, parse_cfg_text

__all__ = [
    "DarknetCfg",
    "DarknetCfgError",
    "DarknetNet",
    "LayerInfo",
    "parse_cfg",
    "parse_cfg_text",
]
