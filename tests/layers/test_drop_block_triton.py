"""The fused Triton kernel against the reference, given the same centres.

On a machine without a GPU the kernels run under ``TRITON_INTERPRET=1`` (set in conftest.py).
"""

from __future__ import annotations

import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="Triton is not installed (CPU-only torch build)")

from layers.drop_block import (  # noqa: E402
    DropBlock2d,
    block_extent,
    centre_rate,
    drop_block2d_from_centres,
)
from layers.drop_block_triton import drop_block2d_triton, triton_centres  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and TRITON_INTERPRET is not 1", allow_module_level=True)

CASES = [
    # shape, block, scope, rescale, channels_last
    ((2, 3, 14, 14), 7, "channel", "batch", False),
    ((2, 4, 7, 7), 7, "channel", "batch", False),
    ((3, 4, 9, 13), 4, "sample", "sample", True),
    ((2, 3, 16, 12), 3, "channel", "sample", True),
    ((1, 2, 20, 20), 1, "sample", "batch", False),
]


def _reference_with_kernel_centres(x, p, block, scope, rescale, seed):
    n, c, h, w = x.shape
    bh, bw = block_extent(block, h, w)
    rate = centre_rate(p, h, w, bh, bw)
    centres = triton_centres(
        (n, c if scope == "channel" else 1, h - bh + 1, w - bw + 1), rate, seed, device=x.device
    )
    return drop_block2d_from_centres(x, centres, bh, bw, rescale), centres


@pytest.mark.parametrize(("shape", "block", "scope", "rescale", "channels_last"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_kernel_matches_reference_forward_and_backward(
    shape, block, scope, rescale, channels_last, dtype
):
    torch.manual_seed(0)
    x = torch.randn(shape, device=DEVICE).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(shape, device=DEVICE).to(dtype)
    x_fused = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)

    y_fused = drop_block2d_triton(x_fused, 0.3, block, scope=scope, rescale=rescale, seed=1234)
    y_fused.backward(grad)
    y_ref, centres = _reference_with_kernel_centres(x_ref, 0.3, block, scope, rescale, 1234)
    y_ref.backward(grad)

    assert centres.sum() > 0, "the case must drop something"
    assert torch.equal(y_fused == 0, y_ref == 0) or dtype != torch.float32
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        # The interpreter emulates the fp32 -> bf16 cast by truncation, the GPU rounds to nearest
        # even: allow one bf16 ulp (2**-7 relative) here, exact everywhere else.
        torch.testing.assert_close(y_fused, y_ref, rtol=2**-7, atol=0)
        torch.testing.assert_close(x_fused.grad, x_ref.grad, rtol=2**-7, atol=0)
    else:
        assert torch.equal(y_fused, y_ref)
        assert torch.equal(x_fused.grad, x_ref.grad)
    if channels_last:
        assert y_fused.is_contiguous(memory_format=torch.channels_last)


def test_same_seed_same_output_and_no_mask_saved_for_backward():
    x = torch.randn(4, 8, 14, 14, device=DEVICE, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = drop_block2d_triton(x, 0.2, 5, seed=99)
    assert torch.equal(y, drop_block2d_triton(x, 0.2, 5, seed=99))
    assert not torch.equal(y, drop_block2d_triton(x, 0.2, 5, seed=100))
    # Only the scale survives for backward: one fp32 number, nothing the size of the input.
    assert sum(t.numel() for t in saved) == 1


def test_kernel_draws_centres_at_the_rate():
    # 200k Bernoulli(0.1) draws: se 0.00067, so 3% (0.003) is > 4 sigma. With the equality tests
    # above (kernel == reference given the kernel's centres), the reference's drop-rate tests
    # (tests/layers/test_drop_block.py) then hold for the kernel too.
    centres = triton_centres((4, 16, 56, 56), 0.1, seed=11, device=DEVICE)
    assert centres.mean().item() == pytest.approx(0.1, rel=0.03)
    other = triton_centres((4, 16, 56, 56), 0.1, seed=12, device=DEVICE)
    assert not torch.equal(centres, other)


def test_module_uses_reference_on_cpu_and_kernel_when_asked():
    module = DropBlock2d(0.2, 5, schedule="none", kernel="triton").train()
    torch.manual_seed(3)
    x = torch.randn(2, 4, 14, 14, device=DEVICE)
    y = module(x)
    assert ((y == 0).float().mean() > 0).item()
    if DEVICE == "cpu":
        auto = DropBlock2d(0.2, 5, schedule="none").train()
        torch.manual_seed(3)
        reference = DropBlock2d(0.2, 5, schedule="none", kernel="reference").train()
        torch.manual_seed(3)
        a = auto(x)
        torch.manual_seed(3)
        assert torch.equal(a, reference(x))  # auto == reference on the CPU
