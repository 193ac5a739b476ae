"""DropBlock forward + backward beside ``y = x * 1.0``, timm and torchvision; correctness first.

    python bench/dropblock.py                 # on a GPU: the issue's shapes, fp32 and bf16
    python bench/dropblock.py --quick         # small shapes (runs on a CPU in seconds)
    python bench/dropblock.py --resnet50      # also the ResNet-50 training step, none vs dropblock

Prints markdown tables: per shape and dtype the median fwd+bwd time of each implementation, its
ratio to ``x * 1.0`` at the same shape, and the bytes it keeps for backward per input byte
(counted with ``torch.autograd.graph.saved_tensors_hooks``). Before timing, on CUDA, it checks
that the fused kernel equals the reference given the kernel's centres and that it drops p.

Timing: CUDA events around each fwd+bwd, median of ``--iters`` after ``--warmup`` (GPU); wall
clock otherwise. All rows of one table come from one process, so their ratios are comparable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from layers.drop_block import block_extent, centre_rate, drop_block2d, drop_block2d_from_centres

SHAPES = [(64, 1024, 14, 14), (64, 2048, 7, 7), (256, 1024, 14, 14)]
QUICK_SHAPES = [(8, 64, 14, 14), (8, 128, 7, 7)]


def implementations(
    device: torch.device, fused: bool | None = None
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The implementations timed, by name; the fused kernel on CUDA (or when ``fused`` is True:
    under ``TRITON_INTERPRET=1`` on the CPU)."""
    impls: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"x * 1.0": lambda x: x * 1.0}
    if device.type == "cuda" if fused is None else fused:
        from layers.drop_block_triton import drop_block2d_triton

        impls["ours fused (Triton)"] = lambda x: drop_block2d_triton(x, 0.1, 7)
    impls["ours reference (eager)"] = lambda x: drop_block2d(x, 0.1, 7)
    try:
        import timm.layers

        shared = timm.layers.DropBlock2d(0.1, 7).train()
        impls["timm DropBlock2d (default, shared mask)"] = shared
        try:
            per_channel = timm.layers.DropBlock2d(0.1, 7, couple_channels=False).train()
            impls["timm DropBlock2d (per-channel)"] = per_channel
        except TypeError:
            pass
    except ImportError:
        pass
    try:
        from torchvision.ops import drop_block2d as tv_drop_block2d

        impls["torchvision drop_block2d"] = lambda x: tv_drop_block2d(x, 0.1, 7)
    except ImportError:
        pass
    return impls


@dataclass
class Timing:
    """Median of ``samples`` timed calls (``wanted`` were asked for; fewer when the deadline came)."""

    ms: float
    samples: int
    wanted: int

    @property
    def cut(self) -> bool:
        return self.samples < self.wanted


def measure_ms(
    fn: Callable[[], None],
    device: torch.device,
    warmup: int,
    iters: int,
    deadline: float | None = None,
) -> Timing:
    """Median ms of ``fn``: CUDA events on a GPU, wall clock otherwise. Past ``deadline``
    (``time.monotonic()``), warm-up and timing stop early, after at least one timed call."""
    for _ in range(warmup):
        if deadline is not None and time.monotonic() > deadline:
            break
        fn()
    samples: list[float] = []
    for _ in range(iters):
        if samples and deadline is not None and time.monotonic() > deadline:
            break
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(samples), len(samples), iters)


def _saved_per_input_byte(impl: Callable, x: torch.Tensor) -> float:
    saved: list[torch.Tensor] = []
    leaf = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        impl(leaf)
    own = {leaf.data_ptr()}
    extra = sum(t.numel() * t.element_size() for t in saved if t.data_ptr() not in own)
    return extra / (x.numel() * x.element_size())


def fused_vs_reference(
    x: torch.Tensor,
    p: float,
    block_size: int,
    seed: int,
    *,
    scope: str = "channel",
    rescale: str = "batch",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused kernel and the reference given the kernel's own anchors for ``seed``, forward and
    backward on the same ``dy`` (as tests/layers/test_drop_block_triton.py compares them).

    Returns ``(y_fused, y_reference, dx_fused, dx_reference)``.
    """
    from layers.drop_block_triton import drop_block2d_triton, triton_centres

    n, c, height, width = x.shape
    bh, bw = block_extent(block_size, height, width)
    rate = centre_rate(p, height, width, bh, bw)
    shape = (n, c if scope == "channel" else 1, height - bh + 1, width - bw + 1)
    centres = triton_centres(shape, rate, seed, device=x.device)
    grad = torch.randn(x.shape, device=x.device).to(x.dtype)
    x_fused, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_fused = drop_block2d_triton(x_fused, p, block_size, scope=scope, rescale=rescale, seed=seed)
    y_fused.backward(grad)
    y_ref = drop_block2d_from_centres(x_ref, centres, bh, bw, rescale)
    y_ref.backward(grad)
    return y_fused.detach(), y_ref.detach(), x_fused.grad, x_ref.grad


def check_fused(device: torch.device) -> list[str]:
    """Correctness of the fused kernel on this device; returns report lines (raises on failure)."""
    from layers.drop_block_triton import drop_block2d_triton

    lines = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for channels_last in (False, True):
            x = torch.randn(8, 64, 14, 14, device=device, dtype=dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y1, y2, g1, g2 = fused_vs_reference(x, 0.2, 7, seed=42)
            if not (torch.equal(y1, y2) and torch.equal(g1, g2)):
                raise AssertionError(
                    f"fused != reference for {dtype}, channels_last={channels_last}"
                )
            lines.append(
                f"fused == reference (forward and backward), {dtype}, channels_last={channels_last}: exact"
            )
    ones = torch.ones(256, 1024, 14, 14, device=device)
    fraction = (drop_block2d_triton(ones, 0.1, 7, gamma="calibrated") == 0).float().mean().item()
    lines.append(
        f"fused dropped fraction at p=0.1, block 7, 14x14, gamma=calibrated: {fraction:.4f}"
    )
    if abs(fraction - 0.1) > 0.003:
        raise AssertionError(f"fused kernel dropped {fraction}, expected 0.1")
    return lines


def bench_layers(device: torch.device, shapes, dtypes, warmup: int, iters: int) -> list[str]:
    impls = implementations(device)
    lines = [
        "| shape (N,C,H,W) | dtype | implementation | fwd+bwd ms | vs x*1.0 | saved bytes / input byte |",
        "|---|---|---|---|---|---|",
    ]
    for shape in shapes:
        for dtype in dtypes:
            x = torch.randn(shape, device=device, dtype=dtype)
            base = None
            for name, impl in impls.items():
                try:
                    ms = measure_ms(layer_step(impl, x), device, warmup, iters).ms
                    saved = _saved_per_input_byte(impl, x)
                except Exception as err:  # a peer that cannot run this case
                    lines.append(
                        f"| {','.join(map(str, shape))} | {str(dtype)[6:]} | {name} | failed: {type(err).__name__} | | |"
                    )
                    continue
                base = ms if name == "x * 1.0" else base
                ratio = f"{ms / base:.2f}x" if base else ""
                lines.append(
                    f"| {','.join(map(str, shape))} | {str(dtype)[6:]} | {name} | {ms:.3f} | {ratio} | {saved:.2f} |"
                )
    return lines


def layer_step(impl: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``impl`` on a leaf copy of ``x``, with a fixed random ``dy``."""
    leaf = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)

    def step() -> None:
        impl(leaf).backward(grad)

    return step


#: DropBlock's placement in the ResNet-50 step: conf/regularizer/dropblock.yaml's groups.
DROPBLOCK_GROUPS = {"3": {"p": 0.025, "block_size": 7}, "4": {"p": 0.1, "block_size": 7}}


def resnet50_step(
    device: torch.device, regularizer: str, batch: int, size: int = 224
) -> Callable[[], None]:
    """One ResNet-50 training step (SGD, bf16 autocast on CUDA, channels_last), the regularizer
    placed by the project's own placement (``regularizers.placement.apply_regularizer``);
    DropBlock at constant p (``schedule=none``), CBN with its defaults."""
    from models import create_backbone, group_modules, group_paths
    from regularizers.placement import apply_regularizer

    dropblock = "dropblock" in regularizer
    model = create_backbone("resnet50", num_classes=1000)
    apply_regularizer(
        model,
        group_modules(model, "resnet50"),
        group_paths(model, "resnet50"),
        regularizer,
        DROPBLOCK_GROUPS if dropblock else {},
        {"schedule": "none"} if dropblock else {},
        input_size=size,
    )
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    target = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()

    return step


def bench_resnet50(device: torch.device, warmup: int, iters: int) -> list[str]:
    """ResNet-50 training step, batch 64, 224x224, bf16 autocast, channels_last: none vs dropblock."""
    lines = ["| regularizer | step ms | img/s | vs none |", "|---|---|---|---|"]
    base = None
    batch = 64 if device.type == "cuda" else 4
    for name in ("none", "dropblock"):
        ms = measure_ms(resnet50_step(device, name, batch), device, warmup, iters).ms
        base = ms if base is None else base
        lines.append(f"| {name} | {ms:.2f} | {batch / ms * 1e3:.0f} | {ms / base:.3f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small shapes, fp32 only")
    parser.add_argument(
        "--resnet50", action="store_true", help="also time the ResNet-50 training step"
    )
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    if device.type == "cuda":
        for line in check_fused(device):
            print(line)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    print()
    print("\n".join(bench_layers(device, shapes, dtypes, args.warmup, args.iters)))
    if args.resnet50:
        print()
        print("\n".join(bench_resnet50(device, max(2, args.warmup // 2), max(5, args.iters // 2))))


if __name__ == "__main__":
    main()
