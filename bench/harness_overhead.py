"""Harness overhead: one training epoch through the runner vs a minimal hand-written loop.

Both train the same model (TinyResNet, same initial weights) on the same DataLoader (the
embedded synthetic set, same shuffling seed) on the CPU. The runner's epoch is
``runners.engine.trainer.Trainer`` with the hooks ``runners.training.fit`` gives every job that
act per step: per-step learning-rate schedule, the regularizers' schedule hook, subdivision
splitting, loss accumulation without a sync per step, progress bar. The minimal loop
is normalize / zero_grad / forward / backward / step. Epochs alternate between the two so that drift on a
shared machine hits both; the medians are compared.

    python bench/harness_overhead.py [--epochs 5] [--batch 64]

Target (issue 2): runner / minimal <= 1.05.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra import compose, initialize_config_dir

from runners.config import register_configs
from runners.config.network import build_model
from runners.data.loaders import build_data
from runners.engine.hooks import ProgressHook, ScheduleHook
from runners.engine.loop import classification_loss
from runners.engine.optim import build_optimizer, lr_at, scaled_lr
from runners.engine.trainer import StepSettings, Trainer
from runners.tracking.progress import EpochProgress
from runners.training import seed_everything

ROOT = Path(__file__).resolve().parent.parent


def minimal_epoch(model, loader, optimizer, criterion, normalize) -> None:
    model.train()
    for images, targets in loader:
        images = normalize(images)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(images), targets)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per side")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"batch={args.batch}", "logger=none", "device=cpu"])
    seed_everything(0, deterministic=True)
    data = build_data(cfg.data, cfg.batch, cfg.seed)
    base_model, _ = build_model(cfg, num_classes=len(data.classes))
    criterion = nn.CrossEntropyLoss()
    lr = scaled_lr(cfg.optim.base_lr, cfg.batch)

    runner_model, minimal_model = copy.deepcopy(base_model), copy.deepcopy(base_model)
    runner_opt = build_optimizer(
        runner_model, lr, cfg.optim.momentum, cfg.optim.weight_decay, False
    )
    minimal_opt = build_optimizer(
        minimal_model, lr, cfg.optim.momentum, cfg.optim.weight_decay, False
    )
    steps = len(data.train)
    total = steps * (args.epochs + 1)
    settings = StepSettings(
        subdivisions=cfg.subdivisions,
        lr_for_step=lambda s: lr_at(s, total, steps, lr),
        normalize=data.normalize,
    )
    bar = lambda n, desc: EpochProgress(n, desc="runner", enabled=sys.stderr.isatty())  # noqa: E731
    trainer = Trainer(
        runner_model, runner_opt, data.train, classification_loss(criterion), settings,
        device=torch.device("cpu"),
        hooks=[ScheduleHook(runner_model, total), ProgressHook(bar, args.epochs + 1)],
    )  # fmt: skip

    def runner_epoch() -> None:
        trainer.train(trainer.position().epoch)  # one more epoch

    timings: dict[str, list[float]] = {"runner": [], "minimal": []}
    runner_epoch()  # warm-up (allocator, thread pools, page cache)
    minimal_epoch(minimal_model, data.train, minimal_opt, criterion, data.normalize)
    for _ in range(args.epochs):
        for name, fn in (
            (
                "minimal",
                lambda: minimal_epoch(
                    minimal_model, data.train, minimal_opt, criterion, data.normalize
                ),
            ),
            ("runner", runner_epoch),
        ):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)

    runner, minimal = statistics.median(timings["runner"]), statistics.median(timings["minimal"])
    images = len(data.train.dataset)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {images} images/epoch, batch {cfg.batch}"
    )
    print("| loop | median epoch s | images/s | epochs |")
    print("|---|---|---|---|")
    print(f"| minimal hand-written | {minimal:.3f} | {images / minimal:.0f} | {args.epochs} |")
    print(
        f"| runner (Trainer + per-step hooks) | {runner:.3f} | {images / runner:.0f} | {args.epochs} |"
    )
    print(f"ratio runner / minimal: {runner / minimal:.3f}")


if __name__ == "__main__":
    main()
