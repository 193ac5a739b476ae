"""Cross-Iteration BN vs nn.BatchNorm2d: one training step of a stack of conv3x3 -> norm -> ReLU.

    python bench/cbn.py            # the issue's shapes (GPU), windows 2 and 4
    python bench/cbn.py --quick    # small shapes that run on a CPU in seconds

Each row: median step time (forward, backward, SGD step) and peak memory (CUDA max allocated;
not measured on the CPU) for BN and for CBN (``mode=cbn``, bound by ``convert_to_cbn``) in the
same process, and their ratios. Target (issue 4, GPU): CBN <= 1.3x BN's time, <= 1.5x its memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dropblock import Timing
from layers.cbn_convert import convert_to_cbn
from layers.cross_iteration_bn import CrossIterationBatchNorm2d

SHAPES = [(64, 256, 14), (16, 256, 14), (64, 512, 7)]
QUICK_SHAPES = [(8, 64, 14), (8, 128, 7)]


def stack(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def measure(
    model: nn.Module, x: torch.Tensor, warmup: int, iters: int, deadline: float | None = None
) -> tuple[Timing, float | None]:
    """Median step time and peak CUDA memory (MiB; None on the CPU). Past ``deadline``
    (``time.monotonic()``) the loop stops early, after at least one timed step."""
    device = x.device
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduled = [m for m in model.modules() if isinstance(m, CrossIterationBatchNorm2d)]
    samples = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + iters):
        if deadline is not None and samples and time.monotonic() > deadline:
            break
        for module in scheduled:
            module.set_schedule_step(step, warmup + iters)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(x).float().square().mean().backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        past = deadline is not None and time.monotonic() > deadline
        if step >= warmup or past:  # past the deadline, a warm-up step is the one sample
            samples.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return Timing(statistics.median(samples), len(samples), iters), peak


def bn_vs_cbn(
    x: torch.Tensor,
    depth: int,
    window: int,
    warmup: int,
    iters: int,
    deadline: float | None = None,
) -> tuple[tuple[Timing, float | None], tuple[Timing, float | None]]:
    """:func:`measure` of a BN stack and of the same stack converted to CBN (``window``), one
    after the other from the same initial weights; half the time to ``deadline`` each."""
    channels = x.shape[1]
    half = None if deadline is None else time.monotonic() + (deadline - time.monotonic()) / 2
    torch.manual_seed(0)
    bn_model = stack(channels, depth).to(x.device)
    bn = measure(bn_model, x, warmup, iters, half)
    del bn_model
    torch.manual_seed(0)
    cbn_model = stack(channels, depth).to(x.device)
    convert_to_cbn(cbn_model, window=window, example_input=x[:1])
    cbn = measure(cbn_model, x, warmup, iters, deadline)
    return bn, cbn


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}; depth {args.depth}; fp32"
    )
    print(
        "| N | C | H=W | window | BN ms | CBN ms | time ratio | BN peak MiB | CBN peak MiB | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, c, hw in QUICK_SHAPES if args.quick else SHAPES:
        x = torch.randn(n, c, hw, hw, device=device)
        for window in (2, 4):
            (bn_time, bn_peak), (cbn_time, cbn_peak) = bn_vs_cbn(
                x, args.depth, window, args.warmup, args.iters
            )
            bn_ms, cbn_ms = bn_time.ms, cbn_time.ms
            memory = (
                f"{bn_peak:.0f} | {cbn_peak:.0f} | {cbn_peak / bn_peak:.2f}x"
                if bn_peak
                else "not measured | not measured | –"
            )
            print(
                f"| {n} | {c} | {hw} | {window} | {bn_ms:.3f} | {cbn_ms:.3f} | {cbn_ms / bn_ms:.2f}x | {memory} |"
            )


if __name__ == "__main__":
    main()
