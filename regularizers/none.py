"""``regularizer=none``: the baseline; nothing is placed in the backbone."""

from __future__ import annotations

from regularizers.base import RegularizerConfig
from regularizers.registry import Regularizer, register

SPEC = register(Regularizer(name="none", schema=RegularizerConfig, order=0))
