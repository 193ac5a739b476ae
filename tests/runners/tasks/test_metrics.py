"""Top-k accuracy against a case worked by hand."""

from __future__ import annotations

import pytest
import torch

from runners.tasks.metrics import topk_correct


def test_topk_hand_computed():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0],  # top1=1, ranks: 1,0,2|3
            [0.8, 0.1, 0.05, 0.05],  # top1=0
            [0.2, 0.3, 0.4, 0.1],  # ranks: 2,1,0,3
            [0.25, 0.25, 0.2, 0.3],  # ranks: 3, then 0/1 tie, 2 last
        ]
    )
    targets = torch.tensor([1, 1, 0, 2])
    # sample 0: top1 hit. sample 1: target 1 is 2nd -> top2 hit. sample 2: target 0 is 3rd.
    # sample 3: target 2 is last (4th).
    assert topk_correct(logits, targets, (1, 2, 3, 4)).tolist() == [1, 2, 3, 4]
    assert topk_correct(logits, targets, (5,)).tolist() == [4]  # k beyond C counts all


def test_topk_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected logits"):
        topk_correct(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), (1,))
