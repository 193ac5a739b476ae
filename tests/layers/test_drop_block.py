"""DropBlock fidelity to the paper (Ghiasi, Lin and Le 2018), on the CPU reference.

Statistical tests are seeded. Each tolerance comment gives the standard error it was sized from.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from layers.drop_block import (
    DropBlock2d,
    block_extent,
    calibrated_gamma,
    drop_block2d,
    expected_drop_fraction,
    paper_gamma,
)


def _dropped_fraction(
    planes: int, size: tuple[int, int], block: float, p: float, seed: int = 0, **kw
) -> float:
    x = torch.ones(planes, 1, *size)
    generator = torch.Generator().manual_seed(seed)
    return (drop_block2d(x, p, block, generator=generator, **kw) == 0).float().mean().item()


def test_gamma_is_eq1_with_per_axis_clamp():
    assert paper_gamma(0.1, 14, 14, 7, 7) == pytest.approx(0.1 * 196 / (49 * 64))
    assert block_extent(7, 5, 9) == (5, 7)  # clamped per axis
    assert paper_gamma(0.1, 5, 9, 5, 7) == pytest.approx(0.1 * 45 / (35 * 1 * 3))
    assert block_extent(0.5, 14, 20, "rel") == (7, 7)


@pytest.mark.parametrize("size", [14, 28, 56])
@pytest.mark.parametrize("block", [1, 3, 5, 7])
def test_paper_gamma_drops_p_within_10_percent(size, block):
    if size < 2 * block:
        pytest.skip("the paper's approximation needs a map at least twice the block")
    # Expected fraction is 0.093..0.100 (overlaps); with 40k planes the standard error is below
    # 0.001, so the 10% band (+-0.01) holds with > 3 sigma to spare.
    planes = max(2000, 40_000 * 196 // (size * size))
    assert _dropped_fraction(planes, (size, size), block, 0.1) == pytest.approx(0.1, rel=0.10)


@pytest.mark.parametrize("size", [7, 14, 28, 56])
@pytest.mark.parametrize("block", [1, 3, 5, 7])
def test_calibrated_gamma_drops_p_within_3_percent(size, block):
    # The expectation is exactly p; the plane count keeps the standard error under 0.00075
    # (7x7 with block 7 is a Bernoulli(0.1) per plane: sqrt(0.09 / 160000) = 0.00075), 4 sigma
    # inside the 3% band.
    bh, bw = block_extent(block, size, size)
    assert expected_drop_fraction(
        calibrated_gamma(0.1, size, size, bh, bw), size, size, bh, bw
    ) == pytest.approx(0.1)
    planes = 160_000 if block == size else max(4000, 200_000 * 49 // (size * size))
    measured = _dropped_fraction(planes, (size, size), block, 0.1, gamma="calibrated")
    assert measured == pytest.approx(0.1, rel=0.03)


def test_small_map_with_block_7_does_not_over_drop():
    # timm's current default drops 0.92 of a 7x7 map at block 7, p=0.1.
    assert _dropped_fraction(100_000, (7, 7), 7, 0.1) == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize(
    ("size", "block"), [((14, 14), 7), ((9, 13), 4), ((6, 11), 3), ((7, 7), 7), ((5, 9), 7)]
)
def test_every_dropped_element_is_inside_a_full_block_inside_the_map(size, block):
    x = torch.ones(64, 8, *size)
    y = drop_block2d(x, 0.3, block, generator=torch.Generator().manual_seed(1))
    dropped = (y == 0).float()
    assert dropped.sum() > 0
    bh, bw = block_extent(block, *size)
    # Opening: windows (inside the map) that are fully dropped, dilated back to blocks.
    full = (F.avg_pool2d(dropped, (bh, bw), stride=1) > 1 - 1e-6).float()
    reopened = F.max_pool2d(F.pad(full, (bw - 1, bw - 1, bh - 1, bh - 1)), (bh, bw), stride=1)
    assert torch.equal(reopened, dropped)


def test_block_as_large_as_the_map_is_spatial_dropout():
    y = drop_block2d(torch.ones(500, 16, 6, 6), 0.2, 9, generator=torch.Generator().manual_seed(2))
    per_channel = (y == 0).float().mean(dim=(2, 3))
    assert set(per_channel.unique().tolist()) <= {0.0, 1.0}  # whole channels or nothing
    assert per_channel.mean().item() == pytest.approx(0.2, abs=0.01)  # se 0.0014


def test_channel_scope_masks_are_independent_and_sample_scope_shared():
    x = torch.ones(20_000, 2, 14, 14)
    y = drop_block2d(x, 0.3, 5, generator=torch.Generator().manual_seed(3))
    # Dropped elements per plane, channel 0 vs channel 1 of the same sample, over 20k samples:
    # the standard error of a null correlation is 1/sqrt(20000) = 0.007, so 0.03 is > 4 sigma.
    counts = (y == 0).float().sum(dim=(2, 3))
    correlation = torch.corrcoef(counts.T)[0, 1].item()
    assert abs(correlation) < 0.03
    shared = drop_block2d(
        x[:100], 0.3, 5, scope="sample", generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(shared[:, 0] == 0, shared[:, 1] == 0)


def test_eval_and_zero_p_are_exact_identities():
    x = torch.randn(2, 3, 8, 8)
    assert drop_block2d(x, 0.5, 3, training=False) is x
    assert drop_block2d(x, 0.0, 3) is x
    module = DropBlock2d(0.1, 3, schedule="none").eval()
    assert module(x) is x
    assert DropBlock2d(0.0, 3).train()(x) is x


def test_rescale_and_gradients_use_the_same_mask_and_factor():
    x = torch.randn(8, 4, 14, 14, dtype=torch.float64, requires_grad=True)
    y = drop_block2d(x, 0.2, 5, generator=torch.Generator().manual_seed(4))
    y.backward(torch.ones_like(y))
    dropped = y == 0
    keep_fraction = 1 - dropped.double().mean()
    scale = 1 / keep_fraction
    torch.testing.assert_close(y[~dropped], x[~dropped] * scale)
    assert torch.all(x.grad[dropped] == 0)
    torch.testing.assert_close(x.grad[~dropped], torch.full_like(x.grad[~dropped], scale.item()))


def test_sample_rescale_keeps_each_sample_mean():
    x = torch.ones(16, 8, 14, 14)
    y = drop_block2d(x, 0.3, 5, rescale="sample", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.ones(16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_correctly_scaled(dtype):
    # 64x256x14x14 keeps ~2.9M elements: an fp16 sum overflows (torchvision returns zeros).
    x = torch.ones(64, 256, 14, 14, dtype=dtype)
    y = drop_block2d(x, 0.1, 7, generator=torch.Generator().manual_seed(6))
    assert torch.isfinite(y).all()
    kept = y != 0
    expected = 1 / kept.float().mean()
    torch.testing.assert_close(
        y[kept].float(), torch.full_like(y[kept].float(), expected.item()), rtol=1e-2, atol=0
    )
    assert y.float().mean().item() == pytest.approx(1.0, rel=1e-2)


def test_input_checks_name_the_rule():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        drop_block2d(torch.ones(1, 1, 4, 4), 1.5, 3)
    with pytest.raises(ValueError, match="4-D input"):
        drop_block2d(torch.ones(4, 4), 0.1, 3)
    with pytest.raises(ValueError, match="scope must be one of"):
        drop_block2d(torch.ones(1, 1, 4, 4), 0.1, 3, scope="batch")
    with pytest.raises(ValueError, match="integer >= 1"):
        DropBlock2d(0.1, 2.5)
    assert "block_size=7" in repr(DropBlock2d(0.1, 7)) and "scope=channel" in repr(
        DropBlock2d(0.1, 7)
    )


def test_public_api_is_exported_from_layers():
    import layers

    assert layers.drop_block2d is drop_block2d and layers.DropBlock2d is DropBlock2d
    assert {"CrossIterationBatchNorm2d", "convert_to_cbn", "set_schedule_step"} <= set(
        layers.__all__
    )
