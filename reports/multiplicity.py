"""Multiple comparisons: Holm's step-down adjustment within a declared family.

Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6 (1979):
with the family's m p-values sorted, ``p_(1) <= ... <= p_(m)``,

    p̃_(i) = min(1, max_{j <= i} (m - j + 1) · p_(j))

which controls the family-wise error rate at α without assuming independence. Computed by
``statsmodels.stats.multitest.multipletests(method="holm")``. A family here is one table: every
comparison of one delta table, or of one interaction table (RESULTS.md names it under the table).
Comparisons without a p-value (fewer than two seeds) are not part of the family's m.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.stats import Delta

__all__ = ["holm"]


def holm(deltas: Sequence[Delta | None]) -> list[Delta | None]:
    """The same deltas, each with ``p_adjusted`` set by Holm over those that have a p-value."""
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, d in enumerate(deltas) if d is not None and d.p is not None]
    out = list(deltas)
    if not tested:
        return out
    _reject, adjusted, _sidak, _bonferroni = multipletests(
        [deltas[i].p for i in tested], method="holm"
    )
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = deltas[i].adjusted(float(p))
    return out
