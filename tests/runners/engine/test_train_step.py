"""Gradient accumulation over subdivisions, and the learning-rate rules."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from runners.engine.loop import chunk_bounds, classification_loss, train_step
from runners.engine.optim import build_optimizer, lr_at, scaled_lr


def _net(with_bn: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1)]
    if with_bn:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    return nn.Sequential(*layers).double()


def _step(model: nn.Module, subdivisions: int) -> list[torch.Tensor]:
    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(64, 3, 8, 8, generator=generator, dtype=torch.double)
    targets = torch.randint(0, 5, (64,), generator=generator)
    optimizer = build_optimizer(model, lr=0.5, momentum=0.9, weight_decay=1e-3, nesterov=False)
    train_step(
        model, images, targets, optimizer, classification_loss(nn.CrossEntropyLoss()), subdivisions
    )
    return [p.detach().clone() for p in model.parameters()]


def test_subdivisions_give_the_same_update_without_batchnorm():
    model = _net(with_bn=False)
    whole, split = _step(model, 1), _step(model, 4)
    before = list(model.parameters())
    assert any((w - b).abs().max() > 1e-3 for w, b in zip(whole, before, strict=True)), (
        "the step changed nothing"
    )
    for w, s in zip(whole, split, strict=True):
        torch.testing.assert_close(w, s, atol=1e-6, rtol=0)


def test_subdivisions_change_the_update_with_batchnorm():
    model = _net(with_bn=True)
    whole, split = _step(model, 1), _step(model, 4)
    assert max((w - s).abs().max().item() for w, s in zip(whole, split, strict=True)) > 1e-4


def test_uneven_last_step_is_weighted_by_samples():
    # 10 samples in 4 forwards (3, 3, 2, 2): the weighted sum still equals the whole-batch mean.
    model = _net(with_bn=False)
    images = torch.randn(10, 3, 8, 8, dtype=torch.double)
    targets = torch.randint(0, 5, (10,))
    losses = []
    for subdivisions in (1, 4):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.0)
        losses.append(
            train_step(
                m, images, targets, opt, classification_loss(nn.CrossEntropyLoss()), subdivisions
            )
        )
    torch.testing.assert_close(losses[0], losses[1])


def test_weight_decay_skips_batchnorm_and_bias():
    optimizer = build_optimizer(
        _net(with_bn=True), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False
    )
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 5e-4 and all(p.ndim > 1 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])


def test_linear_scaling_warmup_and_cosine():
    assert scaled_lr(0.1, 512) == pytest.approx(0.2)
    peak = 1.0
    assert lr_at(0, 100, 10, peak) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, peak) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, peak) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, peak) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, peak) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("total,subdivisions", [(16, 4), (10, 3), (3, 5), (7, 1)])
def test_chunk_bounds_match_tensor_split(total, subdivisions):
    sizes = [len(c) for c in torch.arange(total).tensor_split(subdivisions)]
    bounds = chunk_bounds(total, subdivisions)
    assert [stop - start for start, stop in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == total


def test_train_step_slices_list_targets_in_step_with_images():
    """Detection targets are a list of dicts: each chunk's loss sees its own images' targets."""
    seen = []

    def loss_fn(model, images, targets):
        seen.append((images[:, 0, 0, 0].tolist(), [t["id"] for t in targets]))
        return model(images).sum()

    model = nn.Conv2d(3, 1, 1)
    images = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 3, 1, 1).contiguous()
    targets = [{"id": float(i)} for i in range(6)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train_step(model, images, targets, optimizer, loss_fn, subdivisions=3)
    assert seen == [([0.0, 1.0], [0.0, 1.0]), ([2.0, 3.0], [2.0, 3.0]), ([4.0, 5.0], [4.0, 5.0])]
