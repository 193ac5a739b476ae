"""DropBlock as a fused Triton kernel that keeps no mask for backward.

Same semantics and signature as ``layers.drop_block.drop_block2d`` (Ghiasi, Lin and Le 2018,
arXiv 1810.12890): per-sample (and per-channel) Bernoulli(gamma) anchors over the valid region,
blocks clamped per axis, rescale by count / count_ones summed exactly.

How it works, per plane (one ``H x W`` map of one sample and channel):

- the anchors are ``tl.rand(seed, plane * Hv * Wv + i * Wv + j) < gamma`` (Philox), so any
  kernel can regenerate them from ``(seed, plane)`` alone;
- the block mask is the box dilation of the anchors, computed as two small matrix products
  ``A @ S @ B`` with band matrices ``A[y, i] = i <= y < i + bh`` and ``B[j, x] = j <= x < j + bw``
  (0/1 values, exact in fp16 with fp32 accumulation); an element is dropped iff the product > 0;
- pass 1 counts dropped elements per mask plane without touching ``x``; the scale is computed
  from the exact integer counts; pass 2 reads ``x`` once and writes ``y`` once.

Backward runs pass 2 on ``dy`` with the same seed and scale: the only state saved for backward is
the seed and the scale tensor (no mask, no activation). Contiguous and channels_last inputs are
both addressed through their strides. Maps up to 128 x 128; larger maps use the reference.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from layers.drop_block import (
    _check,
    block_extent,
    centre_rate,
    scale_from_kept,
)

__all__ = ["MAX_SIDE", "drop_block2d_triton", "triton_centres", "triton_supported"]

#: Largest map side the fused kernel handles (the tiles are padded to a power of two >= 16).
MAX_SIDE = 128


@triton.jit
def _dropped_tile(seed, rate, plane, H, W, Hv, Wv, bh, bw, BH: tl.constexpr, BW: tl.constexpr):
    """1.0 where an element of the plane is inside a dropped block, as a [BH, BW] fp32 tile."""
    rows = tl.arange(0, BH)
    cols = tl.arange(0, BW)
    i = rows[:, None]
    j = cols[None, :]
    offsets = plane * Hv * Wv + i * Wv + j
    uniform = tl.rand(seed, offsets)
    anchors = (uniform < rate) & (i < Hv) & (j < Wv)
    # Band matrices: A[y, i] = i <= y < i + bh; B[j, x] = j <= x < j + bw.
    y_idx = rows[:, None]
    i_idx = rows[None, :]
    band_rows = ((i_idx <= y_idx) & (y_idx < i_idx + bh)).to(tl.float16)
    j_idx = cols[:, None]
    x_idx = cols[None, :]
    band_cols = ((j_idx <= x_idx) & (x_idx < j_idx + bw)).to(tl.float16)
    covered = tl.dot(band_rows, anchors.to(tl.float16), out_dtype=tl.float32)
    covered = tl.dot(covered.to(tl.float16), band_cols, out_dtype=tl.float32)
    inside = (i < H) & (j < W)
    return ((covered > 0.5) & inside).to(tl.float32)


@triton.jit
def _count_kernel(counts_ptr, seed, rate, H, W, Hv, Wv, bh, bw, BH: tl.constexpr, BW: tl.constexpr):
    plane = tl.program_id(0)
    dropped = _dropped_tile(seed, rate, plane, H, W, Hv, Wv, bh, bw, BH, BW)
    tl.store(counts_ptr + plane, tl.sum(tl.sum(dropped, axis=1), axis=0).to(tl.int32))


@triton.jit
def _apply_kernel(
    src_ptr,
    dst_ptr,
    scale_ptr,
    seed,
    rate,
    C,
    H,
    W,
    Hv,
    Wv,
    bh,
    bw,
    s_n,
    s_c,
    s_h,
    s_w,
    d_n,
    d_c,
    d_h,
    d_w,
    SHARED_MASK: tl.constexpr,
    PER_SAMPLE_SCALE: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // C
    c = pid % C
    plane = n if SHARED_MASK else pid
    dropped = _dropped_tile(seed, rate, plane, H, W, Hv, Wv, bh, bw, BH, BW)
    scale = tl.load(scale_ptr + n) if PER_SAMPLE_SCALE else tl.load(scale_ptr)
    y = tl.arange(0, BH)[:, None]
    x = tl.arange(0, BW)[None, :]
    inside = (y < H) & (x < W)
    src = n.to(tl.int64) * s_n + c.to(tl.int64) * s_c + y * s_h + x * s_w
    values = tl.load(src_ptr + src, mask=inside, other=0.0).to(tl.float32)
    out = tl.where(dropped > 0.5, 0.0, values * scale)
    dst = n.to(tl.int64) * d_n + c.to(tl.int64) * d_c + y * d_h + x * d_w
    tl.store(dst_ptr + dst, out.to(dst_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _centres_kernel(out_ptr, seed, rate, Hv, Wv, BH: tl.constexpr, BW: tl.constexpr):
    """Write the anchors of one plane (for tests: the same draws as ``_dropped_tile``)."""
    plane = tl.program_id(0)
    i = tl.arange(0, BH)[:, None]
    j = tl.arange(0, BW)[None, :]
    offsets = plane * Hv * Wv + i * Wv + j
    anchors = (tl.rand(seed, offsets) < rate) & (i < Hv) & (j < Wv)
    tl.store(out_ptr + offsets, anchors.to(tl.float32), mask=(i < Hv) & (j < Wv))


def _tile(side: int) -> int:
    return max(16, triton.next_power_of_2(side))


def triton_supported(x: torch.Tensor) -> bool:
    """Whether the fused kernel can take ``x``: 4-D, float, maps up to ``MAX_SIDE``."""
    return (
        x.ndim == 4
        and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and max(x.shape[-2:]) <= MAX_SIDE
        and x.numel() < 2**31
    )


def triton_centres(
    shape: tuple[int, int, int, int], rate: float, seed: int, device: torch.device | str = "cuda"
) -> torch.Tensor:
    """The anchors the kernel draws for ``seed``: ``Tensor[N, C|1, Hv, Wv]`` of 0/1 (fp32)."""
    n, planes_per_sample, hv, wv = shape
    out = torch.zeros(shape, dtype=torch.float32, device=device)
    _centres_kernel[(n * planes_per_sample,)](out, seed, rate, hv, wv, BH=_tile(hv), BW=_tile(wv))
    return out


def _launch_apply(src, dst, scale, meta) -> None:
    n, c, h, w = src.shape
    _apply_kernel[(n * c,)](
        src, dst, scale, meta["seed"], meta["rate"], c, h, w, meta["hv"], meta["wv"], meta["bh"], meta["bw"],
        *src.stride(), *dst.stride(),
        SHARED_MASK=meta["shared"], PER_SAMPLE_SCALE=meta["per_sample"], BH=meta["BH"], BW=meta["BW"],
    )  # fmt: skip


class _FusedDropBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, meta: dict) -> torch.Tensor:  # type: ignore[override]
        n, c, h, w = x.shape
        mask_planes = n if meta["shared"] else n * c
        counts = torch.empty(mask_planes, dtype=torch.int32, device=x.device)
        _count_kernel[(mask_planes,)](
            counts, meta["seed"], meta["rate"], h, w, meta["hv"], meta["wv"], meta["bh"], meta["bw"],
            BH=meta["BH"], BW=meta["BW"],
        )  # fmt: skip
        per_plane = h * w
        if meta["per_sample"]:
            dropped = counts.view(n, -1).sum(dim=1, dtype=torch.int64)
            numel = (1 if meta["shared"] else c) * per_plane
        else:
            dropped = counts.sum(dtype=torch.int64)
            numel = mask_planes * per_plane
        scale = scale_from_kept(numel, (numel - dropped).to(torch.float32)).reshape(-1).contiguous()
        out = torch.empty_like(x)
        _launch_apply(x, out, scale, meta)
        ctx.meta = meta
        ctx.save_for_backward(scale)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        grad_in = torch.empty_like(grad_out)
        _launch_apply(grad_out, grad_in, scale, ctx.meta)
        return grad_in, None


def drop_block2d_triton(
    x: torch.Tensor,
    p: float,
    block_size: float = 7,
    training: bool = True,
    *,
    size_mode: str = "abs",
    scope: str = "channel",
    rescale: str = "batch",
    gamma: str = "paper",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Fused DropBlock; arguments as ``layers.drop_block.drop_block2d``.

    ``seed`` fixes the Philox stream (drawn from ``generator`` / torch's default CPU generator
    when None, so ``torch.manual_seed`` makes runs repeatable).
    """
    _check(x, p, scope, rescale, gamma)
    if not training or p == 0.0:
        return x
    if not triton_supported(x):
        raise ValueError(
            f"the fused DropBlock kernel takes float 4-D maps up to {MAX_SIDE}x{MAX_SIDE}, got {tuple(x.shape)} {x.dtype}"
        )
    _, _, height, width = x.shape
    bh, bw = block_extent(block_size, height, width, size_mode)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    meta = {
        "seed": seed,
        "rate": centre_rate(p, height, width, bh, bw, gamma),
        "bh": bh,
        "bw": bw,
        "hv": height - bh + 1,
        "wv": width - bw + 1,
        "shared": scope == "sample",
        "per_sample": rescale == "sample",
        "BH": _tile(height),
        "BW": _tile(width),
    }
    return _FusedDropBlock.apply(x, meta)
