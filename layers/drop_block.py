"""DropBlock: A regularization method for convolutional networks.

Ghiasi, Lin and Le, NeurIPS 2018, arXiv 1810.12890. Reference implementation (any device);
``layers.drop_block_triton`` is the fused GPU kernel with the same semantics.

Algorithm 1 of the paper, as the official TF code (``tensorflow/tpu`` ``resnet_model.py``)
implements it:

1. block centres are drawn i.i.d. Bernoulli(gamma) over the *valid region* only (positions where
   a whole ``bh x bw`` block fits inside the map), per sample and per channel;
2. every centre zeroes its block;
3. the output is rescaled by count(mask) / count_ones(mask) over the whole batch, the count
   summed in fp32 (torchvision's half-precision sum overflows to an all-zero output).

Eq. 1 with separate height and width terms and the block clamped per axis to the map:
``gamma = p * H * W / (bh * bw * (H - bh + 1) * (W - bw + 1))``. Blocks overlap, so that gamma
drops a little less than ``p``; ``gamma="calibrated"`` solves for the gamma whose expected dropped
fraction is exactly ``p``.

Departures from the paper are named arguments (defaults = the paper): ``scope="sample"`` shares
one mask across a sample's channels (timm's default), ``rescale="sample"`` rescales each sample
by its own kept fraction (Darknet), ``size_mode="rel"`` gives the block as a fraction of the map
side (Darknet's ``dropblock_size_rel``). Blocks are anchored by their top-left corner inside the
valid region, so odd and even sizes need no special case; a block at least as large as the map
drops whole channels with probability ``p`` (SpatialDropout).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.schedule import SCHEDULES, ramp_factor

__all__ = [
    "SCOPES",
    "DropBlock2d",
    "block_extent",
    "calibrated_gamma",
    "drop_block2d",
    "drop_block2d_from_centres",
    "expected_drop_fraction",
    "paper_gamma",
    "sample_centres",
]

SIZE_MODES = ("abs", "rel")
SCOPES = ("channel", "sample")
RESCALES = ("batch", "sample")
GAMMAS = ("paper", "calibrated")


def block_extent(
    block_size: float, height: int, width: int, size_mode: str = "abs"
) -> tuple[int, int]:
    """The block's (bh, bw) on an ``height x width`` map, clamped per axis to the map.

    ``abs``: ``block_size`` pixels. ``rel``: ``int(block_size * min(H, W))`` pixels, at least 1
    (Darknet's ``dropblock_size_rel``, which also makes the block square).
    """
    if size_mode == "abs":
        side = int(block_size)
        if side != block_size or side < 1:
            raise ValueError(
                f"block_size must be an integer >= 1 with size_mode='abs', got {block_size}"
            )
    elif size_mode == "rel":
        if not 0 < block_size <= 1:
            raise ValueError(f"block_size must be in (0, 1] with size_mode='rel', got {block_size}")
        side = max(1, int(block_size * min(height, width)))
    else:
        raise ValueError(f"size_mode must be one of {SIZE_MODES}, got {size_mode!r}")
    return min(side, height), min(side, width)


def paper_gamma(p: float, height: int, width: int, bh: int, bw: int) -> float:
    """Eq. 1: ``p * H * W / (bh * bw * (H - bh + 1) * (W - bw + 1))``."""
    return p * height * width / (bh * bw * (height - bh + 1) * (width - bw + 1))


def _coverage(length: int, block: int) -> list[int]:
    """For each position along an axis, how many valid block anchors cover it."""
    valid = length - block + 1
    return [min(y, valid - 1) - max(0, y - block + 1) + 1 for y in range(length)]


def expected_drop_fraction(gamma: float, height: int, width: int, bh: int, bw: int) -> float:
    """E[dropped fraction] for centre rate ``gamma``: mean over positions of 1 - (1 - gamma)^k,
    k = number of valid anchors whose block covers the position (this accounts for overlaps)."""
    if gamma <= 0:
        return 0.0
    if gamma >= 1:
        return 1.0
    log_keep = math.log1p(-gamma)
    rows, cols = _coverage(height, bh), _coverage(width, bw)
    total = sum(1.0 - math.exp(kr * kc * log_keep) for kr in rows for kc in cols)
    return total / (height * width)


@functools.lru_cache(maxsize=4096)
def calibrated_gamma(p: float, height: int, width: int, bh: int, bw: int) -> float:
    """The gamma whose expected dropped fraction equals ``p`` exactly (bisection, 1e-12)."""
    if p <= 0:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if expected_drop_fraction(mid, height, width, bh, bw) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _check(x: torch.Tensor, p: float, scope: str, rescale: str, gamma: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability p must be in [0, 1], got {p}")
    if x.ndim != 4:
        raise ValueError(
            f"drop_block2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}"
        )
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
    if gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")


def centre_rate(p: float, height: int, width: int, bh: int, bw: int, gamma: str = "paper") -> float:
    """The Bernoulli rate of a block centre for drop probability ``p`` (clipped to [0, 1])."""
    rate = (
        calibrated_gamma(p, height, width, bh, bw)
        if gamma == "calibrated"
        else paper_gamma(p, height, width, bh, bw)
    )
    return min(1.0, max(0.0, rate))


def sample_centres(
    shape: tuple[int, int, int, int],
    rate: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bernoulli(rate) block anchors, ``Tensor[N, C or 1, H - bh + 1, W - bw + 1]`` of 0/1 (fp32)."""
    uniform = torch.rand(shape, device=device, generator=generator, dtype=torch.float32)
    return (uniform < rate).to(torch.float32)


def keep_mask_from_centres(centres: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """1 where no block covers the position, 0 inside a block: ``Tensor[N, C|1, H, W]`` (fp32)."""
    padded = F.pad(centres, (bw - 1, bw - 1, bh - 1, bh - 1))
    # Box dilation is separable: a (bh, 1) then a (1, bw) max-pool, O(bh + bw) per element.
    covered = F.max_pool2d(
        F.max_pool2d(padded, kernel_size=(bh, 1), stride=1), kernel_size=(1, bw), stride=1
    )
    return 1.0 - covered


def scale_from_kept(numel: int, kept: torch.Tensor) -> torch.Tensor:
    """``numel / kept`` in fp32 (a true division, shared with the fused kernel so both give the
    same bits). ``kept`` is clamped to 1: an all-dropped mask gives a finite factor."""
    kept = kept.to(torch.float32).clamp_min(1.0)
    return torch.full_like(kept, float(numel)) / kept


def rescale_factor(keep: torch.Tensor, rescale: str) -> torch.Tensor:
    """count(mask) / count_ones(mask), summed in fp32: a scalar (``batch``) or ``Tensor[N]``
    (``sample``)."""
    if rescale == "batch":
        return scale_from_kept(keep.numel(), keep.sum(dtype=torch.float32))
    per_sample = keep.flatten(1)
    return scale_from_kept(per_sample.shape[1], per_sample.sum(dim=1, dtype=torch.float32))


def drop_block2d_from_centres(
    x: torch.Tensor, centres: torch.Tensor, bh: int, bw: int, rescale: str = "batch"
) -> torch.Tensor:
    """Apply given block anchors to ``x``: ``y = x * keep * scale``, computed in fp32.

    Args:
        x: ``Tensor[N, C, H, W]``, any float dtype and memory format.
        centres: ``Tensor[N, C or 1, H - bh + 1, W - bw + 1]`` of 0/1.
        bh, bw: block extent (already clamped to the map).
        rescale: ``batch`` or ``sample``.

    Returns:
        ``Tensor[N, C, H, W]`` of ``x.dtype``; gradients are ``dy * keep * scale``.
    """
    keep = keep_mask_from_centres(centres, bh, bw)
    scale = rescale_factor(keep, rescale)
    multiplier = keep * (scale if scale.ndim == 0 else scale.view(-1, 1, 1, 1))
    compute = torch.promote_types(x.dtype, torch.float32)  # fp32 for half inputs, fp64 stays
    return (x.to(compute) * multiplier.to(compute)).to(x.dtype)


def drop_block2d(
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
) -> torch.Tensor:
    """DropBlock on a batch of feature maps (reference implementation).

    Args:
        x: ``Tensor[N, C, H, W]``.
        p: drop probability (1 - keep_prob), in [0, 1].
        block_size: block side in pixels (``size_mode="abs"``) or as a fraction of the map's
            shorter side (``"rel"``); clamped per axis to the map.
        training: identity when False.
        size_mode: ``abs`` or ``rel``.
        scope: ``channel`` (a mask per sample and channel, the paper) or ``sample`` (one mask per
            sample shared by its channels, timm's default).
        rescale: ``batch`` (the paper, TF) or ``sample`` (Darknet).
        gamma: ``paper`` (Eq. 1) or ``calibrated`` (expected dropped fraction exactly p).
        generator: optional torch generator for the centres.

    Returns:
        ``Tensor[N, C, H, W]``, the same object as ``x`` when not training or when p == 0.
    """
    _check(x, p, scope, rescale, gamma)
    if not training or p == 0.0:
        return x
    n, c, height, width = x.shape
    bh, bw = block_extent(block_size, height, width, size_mode)
    rate = centre_rate(p, height, width, bh, bw, gamma)
    shape = (n, c if scope == "channel" else 1, height - bh + 1, width - bw + 1)
    centres = sample_centres(shape, rate, x.device, generator)
    return drop_block2d_from_centres(x, centres, bh, bw, rescale)


def _fused_kernel():
    """The Triton implementation, or None where Triton is not installed."""
    try:
        from layers.drop_block_triton import drop_block2d_triton, triton_supported
    except ImportError:  # CPU-only torch builds ship without triton
        return None
    return drop_block2d_triton, triton_supported


KERNELS = ("auto", "reference", "triton")


class DropBlock2d(nn.Module):
    """DropBlock as a module: identity in eval mode and while the scheduled p is 0.

    Args:
        p: target drop probability.
        block_size: block side (pixels, or a fraction of the map with ``size_mode="rel"``).
        size_mode, scope, rescale, gamma: as :func:`drop_block2d`.
        schedule: ``linear`` (the paper), ``darknet`` or ``none`` (``layers.schedule``).
        kernel: ``auto`` (the fused Triton kernel on CUDA when it applies, the reference
            otherwise), ``reference`` or ``triton``.

    The schedule position lives in the buffers ``schedule_step`` and ``schedule_total``, set by
    :func:`layers.schedule.set_schedule_step`; a host copy avoids a device sync per forward.
    """

    def __init__(
        self,
        p: float,
        block_size: float = 7,
        *,
        size_mode: str = "abs",
        scope: str = "channel",
        rescale: str = "batch",
        gamma: str = "paper",
        schedule: str = "linear",
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropBlock p must be in [0, 1), got {p}")
        block_extent(block_size, 10**6, 10**6, size_mode)  # validates block_size for its mode
        for name, value, options in (
            ("scope", scope, SCOPES),
            ("rescale", rescale, RESCALES),
            ("gamma", gamma, GAMMAS),
            ("schedule", schedule, SCHEDULES),
            ("kernel", kernel, KERNELS),
        ):
            if value not in options:
                raise ValueError(f"DropBlock {name} must be one of {options}, got {value!r}")
        self.p, self.block_size, self.size_mode = p, block_size, size_mode
        self.scope, self.rescale, self.gamma = scope, rescale, gamma
        self.schedule, self.kernel = schedule, kernel
        self.register_buffer("schedule_step", torch.zeros((), dtype=torch.int64))
        self.register_buffer("schedule_total", torch.zeros((), dtype=torch.int64))
        self._position = (0, 0)  # host copy of (step, total)

    def set_schedule_step(self, step: int, total_steps: int) -> None:
        self._position = (int(step), int(total_steps))

    def current(self) -> tuple[float, float]:
        """The (p, block_size) in force at the current schedule position."""
        factor = ramp_factor(self.schedule, *self._position)
        if self.schedule != "darknet":
            return self.p * factor, self.block_size
        if self.size_mode == "abs":
            return self.p * factor, max(1, int(self.block_size * factor))
        return self.p * factor, max(1e-6, self.block_size * factor)

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # type: ignore[override]
        self.schedule_step.fill_(self._position[0])
        self.schedule_total.fill_(self._position[1])
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._position = (int(self.schedule_step), int(self.schedule_total))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        p, block_size = self.current()
        if p == 0.0:
            return x
        options = {
            "size_mode": self.size_mode,
            "scope": self.scope,
            "rescale": self.rescale,
            "gamma": self.gamma,
        }
        if self.kernel != "reference":
            fused = _fused_kernel()
            usable = fused is not None and fused[1](x) and (x.is_cuda or self.kernel == "triton")
            if usable:
                return fused[0](x, p, block_size, True, **options)
            if self.kernel == "triton":
                raise RuntimeError(
                    "kernel='triton' was requested but Triton cannot run this input (install triton; CUDA or TRITON_INTERPRET=1)"
                )
        return drop_block2d(x, p, block_size, True, **options)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, block_size={self.block_size}, size_mode={self.size_mode}, scope={self.scope}, "
            f"rescale={self.rescale}, gamma={self.gamma}, schedule={self.schedule}, kernel={self.kernel}"
        )
