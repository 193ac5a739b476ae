"""Top-k accuracy, the ImageNet metric (Russakovsky et al. 2015)."""

from __future__ import annotations

import torch

__all__ = ["topk_correct"]


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """Count samples whose target is among the k highest logits, for each k.

    Args:
        logits: ``Tensor[N, C]``.
        targets: ``Tensor[N]`` of class indices.
        ks: the k values; a k larger than C counts every sample as correct.

    Returns:
        ``Tensor[len(ks)]`` (int64) of correct counts. Ties are broken by ``torch.topk``.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits [N, C] and targets [N], got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices  # [N, max_k]
    hits = top.eq(targets[:, None])  # [N, max_k]
    return torch.stack([hits[:, : min(k, max_k)].any(dim=1).sum() for k in ks])
