"""Cross-Iteration Batch Normalization, and Darknet's cumulative mini-batch BN (CmBN).

Yao, Cao, Zheng, Huang and Lin, "Cross-Iteration Batch Normalization", CVPR 2021,
arXiv 2002.05712. Official code: ``Howal/Cross-iterationBatchNorm`` ``mmdet/models/utils/CBN.py``.

``mode="cbn"`` (the paper): the statistics of the last ``window`` mini-batches, each compensated
to the current weights of the convolution that feeds the layer by a first-order Taylor step,

    mu_{t-tau}(W_t) ~= mu_{t-tau} + <d mu_{t-tau} / dW, W_t - W_{t-tau}>     (same for nu = E[y^2])
    mu_bar = mean_tau mu_{t-tau}(W_t),  nu_bar = mean_tau max(nu_{t-tau}(W_t), mu_{t-tau}(W_t)^2)
    y_hat = (y - mu_bar) / sqrt(nu_bar - mu_bar^2 + eps)

Gradients flow only through the current mini-batch's statistics. The derivatives come in closed
form from the convolution's input ``x`` (``torch.nn.grad.conv2d_weight``, which handles stride,
padding, dilation and groups): d mu_j / dW_j is the mean input patch, the same for every output
channel of a group (stored once per group), and d nu_j / dW_j = conv2d_weight(x, 2 y / m).

``mode="cmbn"`` (AlexeyAB/darknet ``batch_normalize=2``): the statistics are averaged
cumulatively over the mini-batches of one optimizer step (the 2nd mini-batch uses the average of
the first two) and reset at the next step; no compensation.

Differences from the official layer (``reference/cbn.md`` section 2), each deliberate:

- state lives in registered buffers (history ring, weight snapshots, valid flags, step), so a
  checkpoint restores the layer exactly and burn-in does not restart after a resume;
- biased variance with ``eps`` inside the square root, exactly ``nn.BatchNorm2d`` when the window
  is 1 or during burn-in; the paper's ``max(nu, mu^2)`` rather than dropping entries;
- one history entry per mini-batch, each with its own weight snapshot, so the mini-batches of one
  optimizer step need no compensation; burn-in counts optimizer steps (set by the runner through
  ``set_schedule_step``, like DropBlock's schedule);
- running statistics (for eval) are updated from the *current* mini-batch, exactly as
  ``nn.BatchNorm2d`` (unbiased running variance), so eval mode is plain BN and folds into the
  convolution;
- statistics and history are fp32 under autocast; reductions keep channels_last.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.grad import conv2d_weight

__all__ = ["MODES", "CrossIterationBatchNorm2d", "conv_stat_derivatives"]

MODES = ("cbn", "cmbn")


def conv_stat_derivatives(
    conv: nn.Conv2d, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form d mu / dW and d nu / dW of the per-channel mean and mean square of ``y = conv(x)``.

    Args:
        conv: the convolution (its stride, padding, dilation and groups are used).
        x: ``Tensor[N, C_in, H, W]``, the convolution's input.
        y: ``Tensor[N, C_out, H', W']``, its output (without bias).

    Returns:
        ``d_mean``: ``Tensor[groups, C_in / groups, kh, kw]``, shared by the channels of a group;
        ``d_sqmean``: ``Tensor[C_out, C_in / groups, kh, kw]``.
    """
    n, _, height, width = y.shape
    m = n * height * width
    groups = conv.groups
    options = {
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": groups,
    }
    per_group_shape = (groups, conv.weight.shape[1], *conv.weight.shape[2:])
    # The mean's gradient output is the constant 1/m, so the batch can be summed first.
    ones = torch.full((1, groups, height, width), 1.0 / m, dtype=x.dtype, device=x.device)
    d_mean = conv2d_weight(x.sum(dim=0, keepdim=True), per_group_shape, ones, **options)
    d_sqmean = conv2d_weight(x, conv.weight.shape, y * (2.0 / m), **options)
    return d_mean, d_sqmean


class CrossIterationBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span mini-batches (see the module docstring).

    Args:
        num_features: channels C.
        window: k, the number of mini-batches whose statistics are combined (1 = plain BN).
        burnin: optimizer steps of plain BN before the window is used.
        mode: ``cbn`` (compensated sliding window) or ``cmbn`` (Darknet's per-step average).
        eps, momentum, affine: as ``nn.BatchNorm2d``.

    ``mode="cbn"`` with ``window > 1`` needs :meth:`bind` to the convolution that feeds it
    (``layers.convert_to_cbn`` does this).
    """

    def __init__(
        self,
        num_features: int,
        window: int = 4,
        burnin: int = 0,
        mode: str = "cbn",
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=True
        )
        if mode not in MODES:
            raise ValueError(f"CBN mode must be one of {MODES}, got {mode!r}")
        if window < 1:
            raise ValueError(f"CBN window must be >= 1, got {window}")
        if burnin < 0:
            raise ValueError(f"CBN burnin must be >= 0, got {burnin}")
        self.window, self.burnin, self.mode = window, burnin, mode
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        # CmBN: running sums over the mini-batches of the current optimizer step.
        self.register_buffer("acc_mean", torch.zeros(num_features))
        self.register_buffer("acc_sqmean", torch.zeros(num_features))
        self.register_buffer("acc_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("acc_step", torch.full((), -1, dtype=torch.int64))
        self._conv: tuple[nn.Conv2d] | None = None  # a tuple: not a submodule
        self._conv_input: torch.Tensor | None = None
        self._hook = None

    # --- binding -------------------------------------------------------------------------------
    def bind(self, conv: nn.Conv2d) -> None:
        """Use ``conv``'s weights for compensation; allocate the history ring (k - 1 entries)."""
        if not isinstance(conv, nn.Conv2d) or conv.out_channels != self.num_features:
            raise ValueError(f"CBN with {self.num_features} channels cannot bind to {conv!r}")
        if self._hook is not None:
            self._hook.remove()
        self._conv = (conv,)
        self._hook = conv.register_forward_pre_hook(self._capture_input)
        if self.mode == "cbn" and self.window > 1:
            past = self.window - 1
            w = conv.weight
            fan_in = w[0].numel()  # C_in / groups * kh * kw
            device, dtype = w.device, w.dtype
            # 3-D buffers: Module.to(memory_format=channels_last) only touches 4-D tensors.
            self.register_buffer(
                "hist_mean", torch.zeros(past, self.num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "hist_sqmean", torch.zeros(past, self.num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "hist_weight",
                torch.zeros(past, self.num_features, fan_in, device=device, dtype=dtype),
            )
            self.register_buffer(
                "hist_dmean", torch.zeros(past, conv.groups, fan_in, device=device, dtype=dtype)
            )
            self.register_buffer(
                "hist_dsqmean",
                torch.zeros(past, self.num_features, fan_in, device=device, dtype=dtype),
            )
            self.register_buffer("hist_valid", torch.zeros(past, dtype=torch.bool, device=device))
            self.register_buffer("hist_next", torch.zeros((), dtype=torch.int64, device=device))

    def _capture_input(self, _conv: nn.Module, args: tuple) -> None:
        self._conv_input = args[0].detach() if self.training else None

    @property
    def conv(self) -> nn.Conv2d | None:
        return self._conv[0] if self._conv else None

    # --- schedule ------------------------------------------------------------------------------
    def set_schedule_step(self, step: int, total_steps: int) -> None:
        """The runner's optimizer step (burn-in and the CmBN reset count these)."""
        del total_steps
        self.step.fill_(step)

    # --- forward -------------------------------------------------------------------------------
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.mode == "cbn" and self.window == 1):
            return super().forward(y)
        if self.mode == "cbn" and self.conv is None:
            raise RuntimeError(
                "CrossIterationBatchNorm2d(mode='cbn') must be bound to its convolution (layers.convert_to_cbn)"
            )
        y32 = y.to(torch.promote_types(y.dtype, torch.float32))  # fp32 under autocast, fp64 stays
        mean = y32.mean(dim=(0, 2, 3))
        sqmean = (y32 * y32).mean(dim=(0, 2, 3))
        self._update_running_stats(y32, mean, sqmean)
        if self.mode == "cmbn":
            agg_mean, agg_sqmean = self._cmbn(mean, sqmean)
        else:
            agg_mean, agg_sqmean = self._cbn(y32, mean, sqmean)
        var = (agg_sqmean - agg_mean * agg_mean).clamp_min(0.0)
        scale = torch.rsqrt(var + self.eps)
        shift = -agg_mean * scale
        if self.affine:
            gamma, beta = self.weight.to(y32.dtype), self.bias.to(y32.dtype)
            scale, shift = scale * gamma, shift * gamma + beta
        out = y32 * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        return out.to(y.dtype)

    def _update_running_stats(
        self, y32: torch.Tensor, mean: torch.Tensor, sqmean: torch.Tensor
    ) -> None:
        """EMA of the current mini-batch's mean and unbiased variance, as ``nn.BatchNorm2d``."""
        with torch.no_grad():
            n = y32.numel() // y32.shape[1]
            biased = (sqmean - mean * mean).clamp_min(0.0)
            var = biased * (n / (n - 1)) if n > 1 else torch.zeros_like(mean)
            self.num_batches_tracked.add_(1)
            momentum = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), momentum)

    def _cmbn(self, mean: torch.Tensor, sqmean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cumulative average over the mini-batches of the current optimizer step."""
        same_step = ((self.acc_step == self.step) & (self.step >= self.burnin)).to(mean.dtype)
        prior_count = self.acc_count.to(mean.dtype) * same_step
        prior_mean = self.acc_mean * same_step
        prior_sqmean = self.acc_sqmean * same_step
        count = prior_count + 1
        sqmean_clamped = torch.maximum(sqmean, mean * mean)
        agg_mean = (prior_mean + mean) / count
        agg_sqmean = (prior_sqmean + sqmean_clamped) / count
        with torch.no_grad():
            self.acc_mean.copy_((prior_mean + mean.detach()).to(self.acc_mean.dtype))
            self.acc_sqmean.copy_(
                (prior_sqmean + sqmean_clamped.detach()).to(self.acc_sqmean.dtype)
            )
            self.acc_count.copy_(count.to(torch.int64))
            self.acc_step.copy_(self.step)
        return agg_mean, agg_sqmean

    def _cbn(
        self, y32: torch.Tensor, mean: torch.Tensor, sqmean: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compensated sliding window of the last k mini-batches (this one included)."""
        conv, x = self.conv, self._conv_input
        if x is None:
            raise RuntimeError("CBN did not see its convolution's input in this forward")
        dtype = y32.dtype
        weight = conv.weight.detach().to(dtype)
        past = self.window - 1
        past_mean, past_sqmean = self.compensated_history(weight)
        active = self.hist_valid & (self.step >= self.burnin)
        weights = active.to(mean.dtype).unsqueeze(1)  # [k-1, 1]
        count = 1.0 + weights.sum()
        past_sq = torch.maximum(past_sqmean, past_mean * past_mean)
        agg_mean = (mean + (weights * past_mean).sum(0)) / count
        agg_sqmean = (torch.maximum(sqmean, mean * mean) + (weights * past_sq).sum(0)) / count
        # During burn-in (count == 1) this is plain BN: mean, max(sqmean, mean^2) = sqmean.
        with torch.no_grad():
            d_mean_now, d_sqmean_now = conv_stat_derivatives(conv, x.to(dtype), y32)
            slot = self.hist_next
            for buffer, value in (
                (self.hist_mean, mean),
                (self.hist_sqmean, sqmean),
                (self.hist_weight, weight.flatten(1)),
                (self.hist_dmean, d_mean_now.flatten(1)),
                (self.hist_dsqmean, d_sqmean_now.flatten(1)),
            ):
                buffer.index_copy_(0, slot.view(1), value.detach().unsqueeze(0).to(buffer.dtype))
            self.hist_valid.index_fill_(0, slot.view(1), True)
            self.hist_next.copy_((slot + 1) % past)
        return agg_mean, agg_sqmean

    def compensated_history(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored means and mean squares, each moved to ``weight`` by a first-order Taylor
        step: ``stat + <d stat / dW, weight - W_snapshot>``. ``Tensor[k-1, C]`` each (entries
        not yet filled are meaningless; ``hist_valid`` says which are)."""
        dtype = weight.dtype
        past, groups = self.window - 1, self.conv.groups
        delta = weight.reshape(1, self.num_features, -1) - self.hist_weight.to(dtype)  # [k-1, C, K]
        grouped = delta.reshape(past, groups, self.num_features // groups, -1)  # [k-1, g, C/g, K]
        d_mean = self.hist_dmean.to(dtype).unsqueeze(2)  # [k-1, g, 1, K]: shared within a group
        past_mean = self.hist_mean.to(dtype) + (grouped * d_mean).sum(-1).reshape(past, -1)
        past_sqmean = self.hist_sqmean.to(dtype) + (self.hist_dsqmean.to(dtype) * delta).sum(-1)
        return past_mean, past_sqmean

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, window={self.window}, burnin={self.burnin}, mode={self.mode}"
        )
