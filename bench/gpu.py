"""One command that proves the GPU path (issue 17): every GPU check of the project, one process.

    python bench/gpu.py --out DIR      # on a GPU: the issue's shapes; --budget-s 420 (7 min) in all
    python bench/gpu.py --dry-run      # on a CPU: tiny shapes, the Triton kernel interpreted
    make bench-gpu                     # the first, with the project's venv

Prints ONE markdown table (section | check | measured | target | result) for docs/BENCHMARKS.md
and writes it, with a JSON of the raw numbers, to ``--out`` (default ``$OUT`` when set) as
``gpu-check.md`` and ``gpu-check.json``. Sections, each in its own try/except (a crash is a row
with the error and the other sections still run); ``--only`` picks some:

- ``kernel``: the fused DropBlock kernel (``layers/drop_block_triton.py``) against the reference
  given the kernel's own anchors, fp32 / bf16 / fp16, contiguous and channels_last: output and
  gradient identical (exact on CUDA; one bf16 ulp when interpreted on the CPU, where Triton's
  interpreter truncates what the GPU rounds, as ``tests/layers/test_drop_block_triton.py``
  allows), the same output for the same seed, only the scale kept for backward; and the
  per-plane dropped fraction of kernel and reference (torch's RNG) at the paper's gamma: means
  and variances agree with each other, means with ``expected_drop_fraction`` (4 standard errors).
- ``layers``: fwd+bwd ms beside ``x * 1.0``, our reference, timm's DropBlock2d (shared mask and
  per-channel) and torchvision's drop_block2d at the shapes of
  ``shared/reference/anchors-measured.md`` (CUDA events, one process, so the ratios compare).
  Targets: fused <= 1.5x ``x * 1.0``, faster than timm (both modes) at every shape, >= 5x faster
  than torchvision at 256x1024x14x14.
- ``cbn``: ``bench/cbn.py``'s conv stack, BN vs CBN: <= 1.3x the time, <= 1.5x the peak memory.
- ``resnet50``: the ResNet-50 training step (batch 64, 224, bf16 autocast, channels_last) with
  none / dropblock / cbn / dropblock_cbn placed by the project's placement: dropblock <= 1.03x
  none; cbn <= 1.3x none's time and <= 1.5x its peak memory; dropblock_cbn reported.
- ``e2e``: ``python run.py`` for one epoch (W&B offline), resnet50 with dropblock_cbn at 224 on
  the synthetic set and ``task=detect``, in subprocesses; each record must say ``completed``.
- ``torchrun``: with two GPUs or more, ``torchrun --nproc_per_node=2 run.py`` (NCCL); its record
  must have the single-process record's keys. With one GPU, a row says "skipped: 1 GPU".

Exit status: 0 when every correctness check passes and no section crashed, whatever the timings
(they are measurements); 1 otherwise; 2 without CUDA unless ``--dry-run``.

Time: ``--budget-s`` (420 s) is shared out among the sections in proportion to their caps
(``CAPS``); what one leaves is shared among the rest. A timing loop stops early when its share
runs out (at least one timed call; the row says "budget: n of N samples"), a subprocess is
stopped at its share (at least 30 s). Imports come on top (about 10 s on dev-cpu; not yet
measured on a GPU).

On the GPU machine (``/work/shared/gpu/README.md``): this script installs nothing. Fetch the
wheels once, here (``echo /.whl/ >> .git/info/exclude && ../shared/gpu/fetch-wheels.sh``), then
in the device call, carrying ``.whl``:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target .site \
      .whl/*.whl && export PYTHONPATH=$PWD/.site:$PWD || exit 1; python3 bench/gpu.py --out $OUT

``--dry-run`` sets ``TRITON_INTERPRET=1`` before Triton is imported when no GPU is present, so
the kernel runs in Triton's interpreter (as ``tests/conftest.py`` does); the parts that need
CUDA (peak memory, NCCL) are rows saying so. The timings of a dry run are no measurements.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import cbn as cbn_bench  # noqa: E402
from bench import dropblock as db_bench  # noqa: E402

#: Each section's share of the budget (seconds at the default ``--budget-s 420``).
CAPS = {"kernel": 50, "layers": 90, "cbn": 30, "resnet50": 80, "e2e": 120, "torchrun": 50}
SECTIONS = tuple(CAPS)
FUSED, X1 = "ours fused (Triton)", "x * 1.0"
TIMM_SHARED, TIMM_CHANNEL = (
    "timm DropBlock2d (default, shared mask)",
    "timm DropBlock2d (per-channel)",
)
TORCHVISION = "torchvision drop_block2d"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Sigmas allowed in the statistical checks: a false alarm below 1e-4 per comparison.
SIGMAS = 4.0


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: the issue's on a GPU, tiny ones for ``--dry-run`` on a CPU."""

    kernel_shape: tuple[int, ...]
    odd_shape: tuple[int, ...]  # scope=sample, rescale=sample, a 9x13 map, block 4
    fractions: tuple[tuple[tuple[int, ...], int, float, int], ...]  # shape, block, p, calls
    layer_shapes: tuple[tuple[int, ...], ...]
    layer_dtypes: tuple[str, ...]
    layer_iters: tuple[int, int]  # warm-up, timed
    cbn_shapes: tuple[tuple[int, int, int], ...]
    cbn_depth: int
    cbn_iters: tuple[int, int]
    resnet: tuple[int, int]  # batch, side
    resnet_iters: tuple[int, int]
    classify: tuple[str, ...]
    detect: tuple[str, ...]


GPU_PLAN = Plan(
    kernel_shape=(32, 64, 14, 14),
    odd_shape=(8, 16, 9, 13),
    fractions=(((64, 512, 14, 14), 7, 0.1, 2), ((64, 512, 7, 7), 7, 0.1, 2)),
    layer_shapes=tuple(db_bench.SHAPES),
    layer_dtypes=("fp32", "bf16"),
    layer_iters=(10, 50),
    cbn_shapes=tuple(cbn_bench.SHAPES),
    cbn_depth=8,
    cbn_iters=(5, 20),
    resnet=(64, 224),
    resnet_iters=(5, 20),
    classify=(
        "backbone=resnet50",
        "regularizer=dropblock_cbn",
        "data.image_size=224",
        "data.train_per_class=16",
        "data.val_per_class=4",
        "batch=32",
        "device=cuda",
    ),
    detect=("task=detect", "data.train_images=64", "data.val_images=16", "device=cuda"),
)
DRY_PLAN = Plan(
    kernel_shape=(2, 3, 14, 14),  # tests/layers/test_drop_block_triton.py CASES[0]
    odd_shape=(2, 3, 9, 13),
    fractions=(((2, 8, 14, 14), 7, 0.1, 3), ((2, 8, 7, 7), 7, 0.1, 3)),
    layer_shapes=((2, 4, 14, 14), (2, 4, 7, 7)),
    layer_dtypes=("fp32",),
    layer_iters=(0, 2),  # the interpreted kernel takes ~0.5 s a call
    cbn_shapes=((2, 8, 14),),
    cbn_depth=2,
    cbn_iters=(1, 2),
    resnet=(2, 64),
    resnet_iters=(1, 1),
    # tests/conftest.py's TINY: a job of a few seconds on a CPU.
    classify=(
        "backbone=tinyresnet",
        "regularizer=dropblock_cbn",
        "data.train_per_class=6",
        "data.val_per_class=3",
        "device=cpu",
    ),
    detect=("task=detect", "data.train_images=8", "data.val_images=6", "device=cpu"),
)


@dataclass
class Row:
    """One line of the table. ``kind``: correctness, perf, info, skipped or error."""

    section: str
    check: str
    measured: str
    target: str
    result: str
    kind: str


class Budget:
    """Shares ``seconds`` among the sections by their caps; what one leaves goes to the rest."""

    def __init__(self, seconds: float, sections: tuple[str, ...]) -> None:
        self.start = time.monotonic()
        self.end = self.start + seconds
        self.caps = {name: CAPS[name] for name in sections}
        self.spent: dict[str, float] = {}

    def section(self, name: str) -> float:
        """The deadline (``time.monotonic()``) of section ``name``, which starts now."""
        left = sum(self.caps[n] for n in self.caps if n not in self.spent)
        now = time.monotonic()
        return now + max(0.0, self.end - now) * self.caps[name] / left

    @staticmethod
    def part(deadline: float, parts: int) -> float:
        """The deadline of the next of ``parts`` equal parts of what is left until ``deadline``."""
        now = time.monotonic()
        return now + max(0.0, deadline - now) / max(1, parts)


@dataclass
class Context:
    device: torch.device
    plan: Plan
    dry_run: bool
    interpreted: bool
    deadline: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)

    def verdict(self, ok: bool) -> str:
        """PASS / FAIL of a performance target (marked as a dry run's, which measures nothing)."""
        word = "PASS" if ok else "FAIL"
        return f"{word} (dry run)" if self.dry_run else word


def _check(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _cut(*timings: db_bench.Timing) -> str:
    cut = [t for t in timings if t.cut]
    if not cut:
        return ""
    return " [budget: " + ", ".join(f"{t.samples} of {t.wanted} samples" for t in cut) + "]"


# -- kernel: correctness -------------------------------------------------------------------------


def _within_bf16_ulp(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.float(), b.float()
    return bool(((a - b).abs() <= 2**-7 * b.abs()).all())


def _kernel_case(ctx: Context, shape, dtype: str, channels_last: bool, block, scope, rescale):
    torch.manual_seed(0)
    x = torch.randn(shape, device=ctx.device).to(DTYPES[dtype])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y_fused, y_ref, g_fused, g_ref = db_bench.fused_vs_reference(
        x, 0.3, block, seed=1234, scope=scope, rescale=rescale
    )
    exact = torch.equal(y_fused, y_ref) and torch.equal(g_fused, g_ref)
    # The interpreter casts fp32 -> bf16 by truncation, the GPU rounds to nearest even.
    ulp = ctx.interpreted and dtype == "bf16"
    close = ulp and _within_bf16_ulp(y_fused, y_ref) and _within_bf16_ulp(g_fused, g_ref)
    same_zeros = torch.equal(y_fused == 0, y_ref == 0) or dtype != "fp32"
    layout = not channels_last or y_fused.is_contiguous(memory_format=torch.channels_last)
    dropped = bool((y_ref == 0).any())
    ok = (exact or close) and same_zeros and layout and dropped
    layout_name = "channels_last" if channels_last else "contiguous"
    detail = "exact" if exact else ("within 1 bf16 ulp (interpreter)" if close else "differ")
    ctx.raw.setdefault("kernel", {}).setdefault("cases", []).append(
        {"shape": shape, "dtype": dtype, "layout": layout_name, "exact": exact, "ok": ok}
    )
    return Row(
        "kernel",
        f"fused == reference, fwd + bwd, {dtype}, {layout_name}, {_shape(shape)}, block {block}, "
        f"p 0.3, scope {scope}, rescale {rescale}",
        f"{detail}; zeros match: {same_zeros}; layout kept: {layout}; dropped: {dropped}",
        "identical (1 bf16 ulp when interpreted)",
        _check(ok),
        "correctness",
    )


def _seed_and_saved(ctx: Context) -> Row:
    from layers.drop_block_triton import drop_block2d_triton

    x = torch.randn(ctx.plan.kernel_shape, device=ctx.device, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = drop_block2d_triton(x, 0.2, 5, seed=99)
    same = torch.equal(y, drop_block2d_triton(x, 0.2, 5, seed=99))
    other = not torch.equal(y, drop_block2d_triton(x, 0.2, 5, seed=100))
    kept = sum(t.numel() for t in saved)
    return Row(
        "kernel",
        f"same seed, same output; another seed, another; saved for backward ({_shape(x.shape)})",
        f"same: {same}; differs: {other}; elements saved: {kept}",
        "True; True; 1 (the scale)",
        _check(same and other and kept == 1),
        "correctness",
    )


def _plane_stats(fractions: torch.Tensor) -> dict[str, float]:
    """Mean, variance and their standard errors of i.i.d. per-plane dropped fractions."""
    f = fractions.double()
    n, mean = f.numel(), f.mean().item()
    var = f.var(unbiased=False).item()
    m4 = ((f - mean) ** 4).mean().item()
    return {
        "n": n,
        "mean": mean,
        "var": var,
        "se_mean": math.sqrt(var / n),
        "se_var": math.sqrt(max(m4 - var**2, 0.0) / n),
    }


def _dropped_fractions(ctx: Context, shape, block: int, p: float, calls: int):
    """Per-plane dropped fractions of the kernel (seeds 0..) and of the reference (torch RNG)."""
    from layers.drop_block import drop_block2d
    from layers.drop_block_triton import drop_block2d_triton

    ones = torch.ones(shape, device=ctx.device)
    generator = torch.Generator(device=ctx.device).manual_seed(0)
    fused, ref = [], []
    for call in range(calls):
        y = drop_block2d_triton(ones, p, block, seed=call)
        fused.append((y == 0).flatten(2).float().mean(-1).flatten())
        y = drop_block2d(ones, p, block, generator=generator)
        ref.append((y == 0).flatten(2).float().mean(-1).flatten())
    return torch.cat(fused), torch.cat(ref)


def _fraction_case(ctx: Context, shape, block: int, p: float, calls: int) -> Row:
    from layers.drop_block import block_extent, centre_rate, expected_drop_fraction

    height, width = shape[-2:]
    bh, bw = block_extent(block, height, width)
    expected = expected_drop_fraction(centre_rate(p, height, width, bh, bw), height, width, bh, bw)
    fused, ref = (_plane_stats(f) for f in _dropped_fractions(ctx, shape, block, p, calls))
    checks = {
        "fused mean ~ E": abs(fused["mean"] - expected) <= SIGMAS * fused["se_mean"] + 1e-9,
        "reference mean ~ E": abs(ref["mean"] - expected) <= SIGMAS * ref["se_mean"] + 1e-9,
        "means agree": abs(fused["mean"] - ref["mean"])
        <= SIGMAS * math.hypot(fused["se_mean"], ref["se_mean"]) + 1e-9,
        "variances agree": abs(fused["var"] - ref["var"])
        <= SIGMAS * math.hypot(fused["se_var"], ref["se_var"]) + 1e-9,
    }
    ctx.raw.setdefault("kernel", {}).setdefault("fractions", []).append(
        {
            "shape": shape,
            "block": block,
            "p": p,
            "expected": expected,
            "fused": fused,
            "reference": ref,
            "checks": checks,
        }
    )
    failed = [name for name, ok in checks.items() if not ok]
    return Row(
        "kernel",
        f"dropped fraction per plane, {_shape(shape)}, block {block}, p {p}, gamma paper, "
        f"{fused['n']} planes each",
        f"fused {fused['mean']:.4f} (var {fused['var']:.4f}), reference {ref['mean']:.4f} "
        f"(var {ref['var']:.4f}), E {expected:.4f}"
        + (f"; off: {', '.join(failed)}" if failed else ""),
        f"means ~ E and each other, variances ~ each other ({SIGMAS:g} se)",
        _check(not failed),
        "correctness",
    )


def section_kernel(ctx: Context) -> list[Row]:
    plan = ctx.plan
    rows = [
        _kernel_case(ctx, plan.kernel_shape, dtype, channels_last, 7, "channel", "batch")
        for dtype in DTYPES
        for channels_last in (False, True)
    ]
    rows.append(_kernel_case(ctx, plan.odd_shape, "fp32", True, 4, "sample", "sample"))
    rows.append(_seed_and_saved(ctx))
    rows += [_fraction_case(ctx, *case) for case in plan.fractions]
    return rows


# -- layers: fwd + bwd timings ---------------------------------------------------------------------


def _time_layers(ctx: Context, shape, dtype: str, impls, parts: int) -> dict[str, Any]:
    x = torch.randn(shape, device=ctx.device, dtype=DTYPES[dtype])
    warmup, iters = ctx.plan.layer_iters
    times: dict[str, Any] = {}
    for name, impl in impls.items():
        deadline = Budget.part(ctx.deadline, parts)
        parts -= 1
        try:
            times[name] = db_bench.measure_ms(
                db_bench.layer_step(impl, x), ctx.device, warmup, iters, deadline
            )
        except Exception as err:  # a peer that cannot run this case
            times[name] = f"{type(err).__name__}: {err}"
    return times


#: The layer targets: (label, numerator, denominator, target, comparison, limit).
LAYER_TARGETS = (
    ("fused / x * 1.0", FUSED, X1, "<= 1.5x", operator.le, 1.5),
    ("fused / timm shared mask", FUSED, TIMM_SHARED, "< 1.0x", operator.lt, 1.0),
    ("fused / timm per-channel", FUSED, TIMM_CHANNEL, "< 1.0x", operator.lt, 1.0),
)
#: Only at the largest shape (256x1024x14x14 on a GPU).
TORCHVISION_TARGET = ("torchvision / fused", TORCHVISION, FUSED, ">= 5x", operator.ge, 5.0)


def _ratio_row(ctx: Context, where: str, times: dict[str, Any], rule: tuple) -> Row:
    label, num, den, target, compare, limit = rule
    missing = [name for name in (num, den) if not isinstance(times.get(name), db_bench.Timing)]
    if missing:
        why = f"{missing[0]}: {times.get(missing[0], 'not available')}"
        if FUSED in missing:  # our kernel failed to run: an error, not a slow peer
            return Row("layers", f"{label}, {where}", why, target, "ERROR", "error")
        return Row("layers", f"{label}, {where}", why, target, "skipped: peer failed", "skipped")
    a, b = times[num], times[den]
    ratio = a.ms / b.ms
    return Row(
        "layers",
        f"{label}, {where}",
        f"{ratio:.2f}x ({a.ms:.3f} / {b.ms:.3f} ms){_cut(a, b)}",
        target,
        ctx.verdict(compare(ratio, limit)),
        "perf",
    )


def _layer_rows(ctx: Context, shape, dtype: str, times, torchvision_shape) -> list[Row]:
    where = f"{_shape(shape)} {dtype}"
    listed = "; ".join(
        f"{name} {t.ms:.3f}" if isinstance(t, db_bench.Timing) else f"{name} failed: {t}"
        for name, t in times.items()
    )
    rows = [Row("layers", f"fwd+bwd ms, {where}", listed, "(all, one process)", "measured", "info")]
    rules = LAYER_TARGETS + ((TORCHVISION_TARGET,) if shape == torchvision_shape else ())
    return rows + [_ratio_row(ctx, where, times, rule) for rule in rules]


def section_layers(ctx: Context) -> list[Row]:
    plan = ctx.plan
    impls = db_bench.implementations(ctx.device, fused=True)
    cases = [(shape, dtype) for shape in plan.layer_shapes for dtype in plan.layer_dtypes]
    rows: list[Row] = []
    parts = len(cases) * len(impls)
    for shape, dtype in cases:
        times = _time_layers(ctx, shape, dtype, impls, parts)
        parts -= len(impls)
        ctx.raw.setdefault("layers", []).append(
            {
                "shape": shape,
                "dtype": dtype,
                "ms": {
                    k: asdict(v) if isinstance(v, db_bench.Timing) else v for k, v in times.items()
                },
            }
        )
        rows += _layer_rows(ctx, shape, dtype, times, plan.layer_shapes[-1])
    return rows


# -- cbn: the conv stack ---------------------------------------------------------------------------


def _memory(peak: float | None, base: float | None) -> tuple[str, bool]:
    """The memory part of a measured cell and whether it meets <= 1.5x (unjudged on a CPU)."""
    if peak is None or base is None:
        return "memory not measured (CPU)", True
    return f"memory {peak / base:.2f}x ({peak:.0f} / {base:.0f} MiB)", peak / base <= 1.5


def section_cbn(ctx: Context) -> list[Row]:
    plan = ctx.plan
    warmup, iters = plan.cbn_iters
    cases = [(shape, window) for shape in plan.cbn_shapes for window in (2, 4)]
    rows = []
    for left, ((n, c, hw), window) in enumerate(cases):
        x = torch.randn(n, c, hw, hw, device=ctx.device)
        deadline = Budget.part(ctx.deadline, len(cases) - left)
        (bn, bn_peak), (cbn, cbn_peak) = cbn_bench.bn_vs_cbn(
            x, plan.cbn_depth, window, warmup, iters, deadline
        )
        ratio = cbn.ms / bn.ms
        memory, memory_ok = _memory(cbn_peak, bn_peak)
        ctx.raw.setdefault("cbn", []).append(
            {
                "shape": [n, c, hw, hw],
                "window": window,
                "bn": asdict(bn),
                "cbn": asdict(cbn),
                "bn_peak_mib": bn_peak,
                "cbn_peak_mib": cbn_peak,
            }
        )
        rows.append(
            Row(
                "cbn",
                f"conv stack x{plan.cbn_depth}, {n}x{c}x{hw}x{hw}, window {window}, CBN / BN",
                f"time {ratio:.2f}x ({cbn.ms:.3f} / {bn.ms:.3f} ms); {memory}{_cut(bn, cbn)}",
                "time <= 1.3x, memory <= 1.5x",
                ctx.verdict(ratio <= 1.3 and memory_ok),
                "perf",
            )
        )
    return rows


# -- resnet50: the training step -------------------------------------------------------------------


def _resnet_variant(
    ctx: Context, name: str, deadline: float
) -> tuple[db_bench.Timing, float | None]:
    gc.collect()
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    batch, side = ctx.plan.resnet
    step = db_bench.resnet50_step(ctx.device, name, batch, side)
    timing = db_bench.measure_ms(step, ctx.device, *ctx.plan.resnet_iters, deadline)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return timing, peak


def section_resnet50(ctx: Context) -> list[Row]:
    names = ("none", "dropblock", "cbn", "dropblock_cbn")
    results = {}
    for left, name in enumerate(names):
        results[name] = _resnet_variant(ctx, name, Budget.part(ctx.deadline, len(names) - left))
    ctx.raw["resnet50"] = {k: {"timing": asdict(t), "peak_mib": m} for k, (t, m) in results.items()}
    batch, side = ctx.plan.resnet
    where = f"batch {batch}, {side}x{side}, bf16 autocast (CUDA), channels_last"
    base, base_peak = results["none"]
    peak_text = f", peak {base_peak:.0f} MiB" if base_peak is not None else ""
    rows = [
        Row(
            "resnet50",
            f"step, none, {where}",
            f"{base.ms:.2f} ms, {batch / base.ms * 1e3:.0f} img/s{peak_text}{_cut(base)}",
            "(baseline)",
            "measured",
            "info",
        )
    ]
    timing, _ = results["dropblock"]
    ratio = timing.ms / base.ms
    rows.append(
        Row(
            "resnet50",
            "step, dropblock / none",
            f"{ratio:.3f}x ({timing.ms:.2f} ms){_cut(timing)}",
            "<= 1.03x",
            ctx.verdict(ratio <= 1.03),
            "perf",
        )
    )
    for name, judged in (("cbn", True), ("dropblock_cbn", False)):
        timing, peak = results[name]
        ratio = timing.ms / base.ms
        memory, memory_ok = _memory(peak, base_peak)
        measured = f"time {ratio:.3f}x ({timing.ms:.2f} ms); {memory}{_cut(timing)}"
        target = "time <= 1.3x, memory <= 1.5x" if judged else "(reported, no target)"
        result = ctx.verdict(ratio <= 1.3 and memory_ok) if judged else "measured"
        rows.append(
            Row(
                "resnet50",
                f"step, {name} / none",
                measured,
                target,
                result,
                "perf" if judged else "info",
            )
        )
    return rows


# -- e2e and torchrun: the real command ------------------------------------------------------------


def _job_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": pythonpath,
    }


def _job_command(overrides, job_dir: Path, data_dir: Path, torchrun: bool = False) -> list[str]:
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
    )
    return [
        sys.executable,
        *launcher,
        str(ROOT / "run.py"),
        *overrides,
        "epochs=1",
        "logger=wandb",
        f"data.cache_dir={data_dir}",
        f"hydra.run.dir={job_dir}",
    ]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as sink:
        return subprocess.Popen(
            command, cwd=ROOT, env=_job_env(), stdout=sink, stderr=subprocess.STDOUT
        )


def _wait(processes: dict[str, subprocess.Popen], deadline: float) -> dict[str, tuple]:
    """Wait for the jobs (started together) until ``deadline``, at least 30 s; for each, None or
    why it failed, and the seconds it ran."""
    start = time.monotonic()
    stop = max(deadline, start + 30.0)
    ended: dict[str, tuple] = {}
    while len(ended) < len(processes):
        for name, process in processes.items():
            if name not in ended and process.poll() is not None:
                code = process.returncode
                ended[name] = (
                    None if code == 0 else f"exit status {code}",
                    time.monotonic() - start,
                )
            elif name not in ended and time.monotonic() > stop:
                process.kill()
                process.wait()
                ended[name] = ("stopped: its share of the budget ran out", time.monotonic() - start)
        time.sleep(0.2)
    return ended


def _job_row(section: str, label: str, job: Path, failure: str | None, seconds: float) -> Row:
    """The row of the job whose directory is ``job`` (its log beside it, ``job.log``)."""
    from runners.core.record import load_record

    try:
        record = load_record(job)
    except (OSError, ValueError) as err:
        log = job.with_suffix(".log")
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        measured = f"{failure or 'no record'}: {err}; " + " / ".join(tail)
        return Row(section, label, measured, "completed", "FAIL", "correctness")
    metrics = ", ".join(
        f"{k} {v:.2f}" for k, v in record.final.items() if k in ("top1", "AP", "loss")
    )
    measured = (
        f"{record.status} in {seconds:.0f} s (process) on {record.device}, "
        f"world size {record.world_size}; {metrics}" + (f" ({failure})" if failure else "")
    )
    ok = record.status == "completed" and failure is None
    return Row(section, label, measured, "completed", _check(ok), "correctness")


def section_e2e(ctx: Context) -> list[Row]:
    """The two jobs at once (the GPU machine has 16 cores; the jobs are small)."""
    work = Path(ctx.raw["workdir"])
    jobs = {"classify": ctx.plan.classify, "detect": ctx.plan.detect}
    commands = {name: _job_command(jobs[name], work / name, work / "data") for name in jobs}
    started = {name: _start(commands[name], work / f"{name}.log") for name in jobs}
    waited = _wait(started, ctx.deadline)
    rows = []
    for name, (failure, seconds) in ((name, waited[name]) for name in jobs):
        label = f"python run.py {' '.join(jobs[name])} epochs=1 logger=wandb (offline)"
        rows.append(_job_row("e2e", label, work / name, failure, seconds))
        ctx.raw.setdefault("e2e", {})[name] = {
            "command": commands[name],
            "failure": failure,
            "seconds": seconds,
        }
    return rows


def section_torchrun(ctx: Context) -> list[Row]:
    label = "torchrun --nproc_per_node=2 run.py (NCCL): record keys == single-process record's"
    gpus = torch.cuda.device_count()
    if gpus < 2:
        why = f"{gpus} GPU" if gpus else "no CUDA (dry run on the CPU)"
        return [Row("torchrun", label, "not run", "2 GPUs or more", f"skipped: {why}", "skipped")]
    work = Path(ctx.raw["workdir"])
    single = work / "classify" / "run.json"
    if not single.is_file():
        return [
            Row(
                "torchrun",
                label,
                "no single-process record (section e2e did not write one)",
                "completed, same keys",
                "ERROR",
                "error",
            )
        ]
    job = work / "torchrun"
    command = _job_command(ctx.plan.classify, job, work / "data", torchrun=True)
    started = {"torchrun": _start(command, job.with_suffix(".log"))}
    failure, seconds = _wait(started, ctx.deadline)["torchrun"]
    row = _job_row("torchrun", label, job, failure, seconds)
    if row.result == "PASS":
        ours, theirs = (json.loads(p.read_text()) for p in (job / "run.json", single))
        keys = set(ours) == set(theirs)
        epochs = [set(e) for e in ours["epochs"]] == [set(e) for e in theirs["epochs"]]
        row.measured += f"; same keys: {keys and epochs}"
        row.result = _check(keys and epochs and ours["world_size"] == 2)
    return [row]


RUNNERS: dict[str, Callable[[Context], list[Row]]] = {
    "kernel": section_kernel,
    "layers": section_layers,
    "cbn": section_cbn,
    "resnet50": section_resnet50,
    "e2e": section_e2e,
    "torchrun": section_torchrun,
}


# -- the run -------------------------------------------------------------------------------------


def _run_section(name: str, ctx: Context, budget: Budget) -> list[Row]:
    ctx.deadline = budget.section(name)
    start = time.monotonic()
    try:
        rows = RUNNERS[name](ctx)
    except Exception as err:
        traceback.print_exc()
        ctx.raw.setdefault("crashes", {})[name] = traceback.format_exc()
        rows = [
            Row(
                name,
                "section ran",
                f"crashed: {type(err).__name__}: {err}",
                "no error",
                "ERROR",
                "error",
            )
        ]
    budget.spent[name] = time.monotonic() - start
    return rows


def _budget_row(ctx: Context, budget: Budget) -> Row:
    spent = ", ".join(f"{k} {v:.0f}" for k, v in budget.spent.items())
    total = budget.end - budget.start
    return Row(
        "budget",
        "seconds per section",
        f"{spent}; all {time.monotonic() - budget.start:.0f} s",
        f"<= {total:.0f} s (8 min with start-up)",
        ctx.verdict(time.monotonic() <= budget.end + 30),
        "perf",
    )


def render(rows: list[Row], header: str) -> str:
    """The markdown table (``|`` inside a cell escaped), under a one-line header."""
    lines = [
        header,
        "",
        "| section | check | measured | target | result |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.section, row.check, row.measured, row.target, row.result)
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        )
    return "\n".join(lines)


def failed(rows: list[Row]) -> list[Row]:
    """Rows that make the exit status non-zero: failed correctness checks and crashes."""
    return [
        r for r in rows if r.kind == "error" or (r.kind == "correctness" and r.result != "PASS")
    ]


def _version(package: str) -> str:
    """The installed version, read without importing the package (timm's import takes seconds)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _environment(device: torch.device, dry_run: bool) -> dict[str, str]:
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    return {
        "device": name,
        "torch": torch.__version__,
        **{package: _version(package) for package in ("triton", "timm", "torchvision")},
        "date": time.strftime("%Y-%m-%d"),
        "mode": "dry run (CPU sizes; timings are no measurements)" if dry_run else "full",
        "triton_interpret": os.environ.get("TRITON_INTERPRET", ""),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny sizes; runs on a CPU (Triton interpreted)"
    )
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT"),
        help="directory for gpu-check.md and .json (default: $OUT)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="seconds for all sections together (default 420)",
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    return parser.parse_args(argv)


def _prepare(dry_run: bool) -> tuple[torch.device, bool] | None:
    """The device and whether Triton is interpreted; None when there is nothing to run on."""
    if torch.cuda.is_available():
        return torch.device("cuda"), False
    if not dry_run:
        return None
    # Triton reads the variable when a kernel is decorated: before layers.drop_block_triton.
    if "layers.drop_block_triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "layers.drop_block_triton was imported before TRITON_INTERPRET=1 was set"
        )
    os.environ["TRITON_INTERPRET"] = "1"
    # One intra-op thread here and in the jobs (as tests/conftest.py): on a small shared CPU,
    # OpenMP threads spin-waiting for a busy core made a tiny ResNet-50 step 25x slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return torch.device("cpu"), True


def _write(out: Path, table: str, report: dict[str, Any], workdir: Path) -> None:
    """``gpu-check.md``, ``gpu-check.json`` and, under ``jobs/``, each job's log and run.json."""
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.md").write_text(table + "\n")
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    for log in workdir.glob("*.log"):
        shutil.copyfile(log, out / "jobs" / log.name)
        record = workdir / log.stem / "run.json"
        if record.is_file():
            shutil.copyfile(record, out / "jobs" / f"{log.stem}.run.json")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    prepared = _prepare(args.dry_run)
    if prepared is None:
        print(
            "bench/gpu.py: no CUDA device here; run it on a GPU, or with --dry-run on a CPU",
            file=sys.stderr,
        )
        return 2
    device, interpreted = prepared
    sections = tuple(s for s in SECTIONS if not args.only or s in args.only)
    budget = Budget(args.budget_s, sections)
    environment = _environment(device, args.dry_run)
    ctx = Context(device, DRY_PLAN if args.dry_run else GPU_PLAN, args.dry_run, interpreted)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        ctx.raw["workdir"] = workdir
        for name in sections:
            rows += _run_section(name, ctx, budget)
            print(
                f"bench/gpu.py: {name} done in {budget.spent[name]:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        rows.append(_budget_row(ctx, budget))
        flags = " --dry-run" if args.dry_run else ""
        details = "; ".join(f"{k} {v}" for k, v in environment.items() if v)
        table = render(rows, f"GPU check (`bench/gpu.py{flags}`): {details}")
        print(table)
        if args.out:
            raw = {k: v for k, v in ctx.raw.items() if k != "workdir"}
            report = {
                "environment": environment,
                "budget_s": args.budget_s,
                "spent_s": budget.spent,
                "rows": [asdict(r) for r in rows],
                "raw": raw,
            }
            _write(Path(args.out), table, report, Path(workdir))
    bad = failed(rows)
    if bad:
        print(
            f"bench/gpu.py: {len(bad)} correctness check(s) failed or section(s) crashed",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
