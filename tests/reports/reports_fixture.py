"""A fixture study of run records for the report tests, written by the tests themselves.

Classification (tinyresnet, 3 epochs): ``none`` and ``dropblock`` at batch 64 (mini 16) and
batch 512 (mini 16), three seeds each, with scores on training images (:func:`train_scores`); detection (cspresnext50, 2 epochs): ``none`` and ``cbn``
at batch 64, two seeds each, APs undefined (NaN) in one run. Plus one run of every left-out kind:
failed, diverged, pruned, running, and a completed run of an older commit (stale).
"""

from __future__ import annotations

import math
from pathlib import Path

from runners.core.record import CodeVersion, EpochMetrics, RunRecord, best_metrics

NEW = CodeVersion(commit="b" * 40, dirty=False)
OLD = CodeVersion(commit="a" * 40, dirty=False)

#: (regularizer, batch, seed) -> final top1; top5 = top1 + 20.
CLASSIFY = {
    ("none", 64, 0): 70.0, ("none", 64, 1): 71.5, ("none", 64, 2): 70.9,
    ("dropblock", 64, 0): 73.2, ("dropblock", 64, 1): 74.0, ("dropblock", 64, 2): 73.1,
    ("none", 512, 0): 61.0, ("none", 512, 1): 63.4, ("none", 512, 2): 60.2,
    ("dropblock", 512, 0): 62.5, ("dropblock", 512, 1): 60.1, ("dropblock", 512, 2): 64.9,
}  # fmt: skip
#: (regularizer, seed) -> final AP; the other COCO numbers are derived from it.
DETECT = {("none", 0): 30.1, ("none", 1): 31.0, ("cbn", 0): 32.4, ("cbn", 1): 33.3}
PARAMS = {"tinyresnet": 170_000, "cspresnext50": 20_500_000}
FLOPS = {"tinyresnet": 120_000_000, "cspresnext50": 7_930_000_000}


def _config(task: str, backbone: str, regularizer: str, epochs: int, seed: int, batch: int):
    return {
        "task": {"name": task},
        "data": {"name": "synthetic"},
        "backbone": {"name": backbone},
        "regularizer": {"name": regularizer},
        "epochs": epochs,
        "seed": seed,
        "batch": batch,
    }


def _record(config, final, *, status="completed", code=NEW, started="2026-11-27T10:00:00+00:00"):
    epochs = config["epochs"]
    history = [
        EpochMetrics(
            epoch=e,
            train_loss=2.0 / e,
            lr=0.1,
            epoch_time_s=1.0,
            images_per_s=100.0,
            # A curve rising to the final value: final - 5 * (epochs - e).
            metrics={k: v - 5.0 * (epochs - e) for k, v in final.items()},
        )
        for e in range(1, epochs + 1)
    ]
    batch = config["batch"]
    backbone = config["backbone"]["name"]
    return RunRecord(
        status=status,
        study="fixture",
        config=config,
        code_version=code,
        batch=batch,
        subdivisions=batch // 16,
        mini_batch=16,
        params=PARAMS[backbone],
        flops=FLOPS[backbone],
        epochs=history,
        final=dict(final) if status == "completed" else {},
        best=best_metrics(history),
        started_at=started,
    )


def coco(ap: float, undefined_small: bool = False) -> dict[str, float]:
    """Twelve COCO numbers derived from AP (APs NaN when ``undefined_small``)."""
    values = {
        "AP": ap, "AP50": ap + 20, "AP75": ap + 2, "APs": ap - 15, "APm": ap, "APl": ap + 10,
        "AR1": ap - 5, "AR10": ap + 5, "AR100": ap + 8, "ARs": ap - 10, "ARm": ap + 8, "ARl": ap + 15,
    }  # fmt: skip
    if undefined_small:
        values["APs"] = values["ARs"] = math.nan
    return values


def train_scores(regularizer: str, seed: int, top1: float) -> dict[str, float]:
    """Scores on training images: a generalization gap of 12 points (loss 0.6) without a
    regularizer, 6 (0.3) with one, plus 0.5 (0.05) a seed."""
    gap = (12.0 if regularizer == "none" else 6.0) + 0.5 * seed
    return {"train_eval_top1": top1 + gap, "train_eval_loss": 1.0 - gap / 20}


def write_fixture(root: Path) -> Path:
    """Write the fixture study under ``root``; returns ``root``."""
    for (reg, batch, seed), top1 in CLASSIFY.items():
        config = _config("classify", "tinyresnet", reg, 3, seed, batch)
        final = {"top1": top1, "top5": top1 + 20, "loss": 1.0, **train_scores(reg, seed, top1)}
        _record(config, final).write(root / "classify" / f"{reg}-b{batch}-s{seed}")
    for (reg, seed), ap in DETECT.items():
        config = _config("detect", "cspresnext50", reg, 2, seed, 64)
        record = _record(config, coco(ap, undefined_small=(reg, seed) == ("cbn", 1)))
        record.write(root / "detect" / f"{reg}-s{seed}")
    left_out = root / "left-out"
    failed = _record(_config("classify", "tinyresnet", "none", 3, 7, 64), {}, status="failed")
    failed.error = "RuntimeError: CUDA out of memory | retry"
    failed.write(left_out / "failed")
    for status in ("diverged", "pruned", "running"):
        run = _record(_config("classify", "tinyresnet", "dropblock", 3, 8, 64), {}, status=status)
        run.write(left_out / status)
    stale = _record(
        _config("classify", "tinyresnet", "dropblock", 3, 9, 64),
        {"top1": 99.0, "top5": 99.9, "loss": 0.1},
        code=OLD,
        started="2026-11-26T09:00:00+00:00",
    )
    stale.write(left_out / "stale")
    return root
