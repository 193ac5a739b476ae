"""Seeds derived from the run's seed, one formula for every use.

The data order of epoch ``e`` (``runners.data.sampler``) and the RNG of torchrun rank ``r``
(``runners.dist.distributed``) each need a seed of their own that is a pure function of the
run's seed, distinct across ``e`` (or ``r``), and unlikely to equal another run's seed for small
seeds: ``(seed * 1_000_003 + index) mod 2^63`` (1,000,003 is prime; the modulus keeps it a valid
torch seed).
"""

from __future__ import annotations

__all__ = ["derived_seed"]


def derived_seed(seed: int, index: int) -> int:
    """The seed for the ``index``-th stream of a run seeded with ``seed``."""
    return (seed * 1_000_003 + index) % 2**63
