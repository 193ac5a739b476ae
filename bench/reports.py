"""Reports at scale: aggregate 10,000 synthetic run records into RESULTS.md.

The records look like a large study's: 2 tasks (classify on 5 backbones, detect on 1), 5
regularizers, 4 batches, 10 epochs of per-epoch metrics each, seeds to fill the count, and 5% of
them failed, diverged, pruned, running or stale. They are written once into a temporary
directory (not timed), then the report is timed end to end as the CLI does it: find and read
every ``run.json`` through the schema module, build the runs table, flag stale runs, pivot,
Welch deltas, model tables, write the markdown. Plots are timed separately (matplotlib).

    python bench/reports.py [--records 10000] [--repeat 3] [--keep DIR]

Target (issue 7): under 5 s for 10,000 records on the 2-core dev machine, plots excluded.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports import write_results
from reports.collect import DETECTION_METRICS
from runners.core.record import CodeVersion, EpochMetrics, RunRecord, best_metrics

BACKBONES = ("tinyresnet", "resnet18", "resnet50", "cspresnext50", "cspdarknet53")
REGULARIZERS = ("none", "dropout", "dropblock", "cbn", "dropblock_cbn")
BATCHES = ((64, 4), (128, 8), (256, 16), (512, 16))  # (batch, subdivisions)
NEW, OLD = CodeVersion("b" * 40, False), CodeVersion("a" * 40, False)


def make_record(i: int, rng: random.Random, epochs: int = 10) -> RunRecord:
    """The i-th synthetic record (classification, or detection for every 6th)."""
    detect = i % 6 == 5
    backbone = "cspresnext50" if detect else BACKBONES[i % len(BACKBONES)]
    regularizer = REGULARIZERS[(i // 6) % len(REGULARIZERS)]
    batch, subdivisions = BATCHES[(i // 30) % len(BATCHES)]
    seed = i // 120
    base = 40.0 if detect else 70.0
    history = []
    for e in range(1, epochs + 1):
        level = base * e / epochs + rng.gauss(0, 1)
        metrics = (
            {name: level + k for k, name in enumerate(DETECTION_METRICS)}
            if detect
            else {"top1": level, "top5": level + 20, "loss": 3.0 / e}
        )
        history.append(EpochMetrics(e, 3.0 / e, 0.1, 1.0, 100.0, metrics))
    roll = rng.random()
    status = "completed"
    if roll < 0.01:
        status = "failed"
    elif roll < 0.02:
        status = "diverged"
    elif roll < 0.03:
        status = "pruned"
    elif roll < 0.04:
        status = "running"
    stale = 0.04 <= roll < 0.05
    return RunRecord(
        status=status,
        study="bench",
        error="RuntimeError: synthetic" if status == "failed" else None,
        config={
            "task": {"name": "detect" if detect else "classify"},
            "data": {"name": "synthetic"},
            "backbone": {"name": backbone},
            "regularizer": {"name": regularizer},
            "epochs": epochs,
            "seed": seed,
        },
        code_version=OLD if stale else NEW,
        batch=batch,
        subdivisions=subdivisions,
        mini_batch=batch // subdivisions,
        params=25_000_000,
        flops=8_000_000_000,
        epochs=history,
        final=dict(history[-1].metrics),
        best=best_metrics(history),
        started_at=f"2026-11-{26 if stale else 27}T{i % 24:02d}:00:00+00:00",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="write the records here and keep them")
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-reports-"))
    rng = random.Random(0)
    start = time.perf_counter()
    for i in range(args.records):
        make_record(i, rng).write(root / "runs" / f"{i:05d}")
    print(f"wrote {args.records} records in {time.perf_counter() - start:.1f} s ({root})")

    try:
        write_results([root / "runs"], out=root / "RESULTS.md", plots=False)  # warm the page cache
        times, cpu = [], []
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            write_results([root / "runs"], out=root / "RESULTS.md", plots=False)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        text = (root / "RESULTS.md").read_text()
        start = time.perf_counter()
        write_results([root / "runs"], out=root / "RESULTS-plots.md", plots=True)
        with_plots = time.perf_counter() - start
        print(
            f"report, no plots: median {statistics.median(times):.2f} s wall, "
            f"{statistics.median(cpu):.2f} s CPU, of {args.repeat} "
            f"(wall {', '.join(f'{t:.2f}' for t in times)})"
        )
        print(
            f"report with plots: {with_plots:.2f} s ({len(list((root / 'plots').glob('*.png')))} PNGs)"
        )
        print(f"RESULTS.md: {len(text.splitlines())} lines; {text.splitlines()[2]}")
    finally:
        if not args.keep:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
