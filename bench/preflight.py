"""What preflight's placement check costs: composing a job with and without it.

For a timm backbone (``backbone=timm``) preflight builds the model on PyTorch's ``meta`` device
and places the regularizer (``runners.config.preflight._check_placement``), so an impossible
placement is one config error before anything is written. This times ``compose`` (Hydra plus
every preflight check) with the check and with it switched off, alternating, and prints the
medians and their ratio per backbone; curated backbones skip the check (their ratio is ~1).

    python bench/preflight.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runners.config import preflight

CASES = {
    "tinyresnet + dropblock_cbn": ["regularizer=dropblock_cbn"],
    "resnet50 + dropblock_cbn": ["backbone=resnet50", "regularizer=dropblock_cbn"],
    "timm:resnet50 + dropblock_cbn": [
        "backbone=timm",
        "backbone.name=resnet50",
        "regularizer=dropblock_cbn",
    ],
    "timm:efficientnet_b0 + dropblock_cbn": [
        "backbone=timm",
        "backbone.name=efficientnet_b0",
        "regularizer=dropblock_cbn",
    ],
    "timm:densenet121 + dropblock_cbn": [
        "backbone=timm",
        "backbone.name=densenet121",
        "regularizer=dropblock_cbn",
    ],
}


def _seconds(overrides: list[str]) -> float:
    start = time.perf_counter()
    preflight.compose(overrides)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the block-size clamping notes, once per compose
    check = preflight._check_placement
    print("| job | compose, with check (s) | without (s) | ratio |")
    print("|---|---|---|---|")
    for label, overrides in CASES.items():
        _seconds(overrides)  # warm: imports, feature-map cache
        with_check, without = [], []
        for _ in range(args.repeats):
            preflight._check_placement = check
            with_check.append(_seconds(overrides))
            preflight._check_placement = lambda cfg: None
            without.append(_seconds(overrides))
        preflight._check_placement = check
        a, b = statistics.median(with_check), statistics.median(without)
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
