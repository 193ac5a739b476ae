"""COCO bbox scoring by pycocotools' ``COCOeval``, and the detections file that re-scores a run.

The twelve numbers are COCOeval's ``stats`` in its own order (AP at IoU .50:.95, .50, .75; AP for
small, medium, large; AR at 1, 10, 100 detections; AR for small, medium, large), recorded in
percent as the CSPNet and DropBlock tables print them. COCOeval writes -1 where a number is
undefined (no ground truth in that area range); the record keeps NaN there.

Two cases where pycocotools itself falls over are handled here, both scored exactly as COCOeval
would: no detections at all (``COCO.loadRes([])`` raises, so an empty result set is built
directly) and images without annotations (COCOeval already counts them; nothing is dropped).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from runners.core.atomic_write import atomic_write
from runners.core.record import COCO_METRICS

__all__ = [
    "COCO_METRICS",
    "DETECTIONS_NAME",
    "GROUND_TRUTH_NAME",
    "coco_detections",
    "score_detections",
    "write_detections",
]

#: In the job directory: the final validation detections (COCO results format) ...
DETECTIONS_NAME = "detections.json"
#: ... and a text file holding the path of the ground truth they are scored against.
GROUND_TRUTH_NAME = "ground_truth.txt"


def coco_detections(
    outputs: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, Any]],
    category_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """torchvision detector outputs (xyxy in letterboxed pixels, 0-based labels) as COCO results:
    ``{"image_id", "category_id", "bbox": [x, y, w, h] in original pixels, "score"}``."""
    results = []
    for output, target in zip(outputs, targets, strict=True):
        boxes = output["boxes"].detach().float().cpu() / target["scale"]
        boxes[:, 2:] -= boxes[:, :2]
        for box, score, label in zip(
            boxes.tolist(), output["scores"].tolist(), output["labels"].tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": int(target["image_id"]),
                    "category_id": int(category_ids[label]),
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    return results


def _empty_results(gt: Any) -> Any:
    from pycocotools.coco import COCO

    results = COCO()
    results.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": copy.deepcopy(gt.dataset["categories"]),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        results.createIndex()
    return results


def score_detections(gt: Any, detections: list[dict[str, Any]]) -> dict[str, float]:
    """COCOeval (bbox) of ``detections`` against the ``gt`` COCO index: the twelve numbers in
    percent, NaN where COCOeval reports -1. ``detections`` is not modified."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(detections)) if detections else _empty_results(gt)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: (float("nan") if value == -1 else 100.0 * float(value))
        for name, value in zip(COCO_METRICS, evaluator.stats, strict=True)
    }


def write_detections(
    job_dir: str | os.PathLike[str], detections: list[dict[str, Any]], ground_truth: Path
) -> Path:
    """Write ``detections.json`` (atomically) and ``ground_truth.txt`` into ``job_dir``.

    With those two files anyone re-scores the run with pycocotools alone::

        gt = COCO(open("ground_truth.txt").read().strip())
        COCOeval(gt, gt.loadRes("detections.json"), "bbox")
    """
    directory = Path(job_dir)
    target = atomic_write(directory / DETECTIONS_NAME, json.dumps(detections))
    atomic_write(directory / GROUND_TRUTH_NAME, f"{Path(ground_truth).resolve()}\n")
    return target
