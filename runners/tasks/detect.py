"""Object detection: RetinaNet on the run's backbone, scored by pycocotools' COCOeval (bbox).

Training minimises torchvision's RetinaNet losses (sigmoid focal loss + smooth-L1 box
regression, summed). Evaluation runs the detector over the validation split, converts its
outputs to COCO results (original pixels, COCO category ids) and scores them with COCOeval; the
last evaluation of a run also writes them to ``detections.json`` in the job directory, beside
``ground_truth.txt`` naming the annotation file they were scored against.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.detection import build_retinanet
from runners.data.coco import DetectionData, build_detection_data
from runners.dist import distributed
from runners.tasks.coco_eval import coco_detections, score_detections, write_detections
from runners.tasks.registry import EvalContext, TaskParts

__all__ = ["build_detection", "evaluate_detector"]


@torch.no_grad()
def evaluate_detector(
    model: nn.Module, data: DetectionData, context: EvalContext
) -> dict[str, float]:
    """The twelve COCOeval numbers (percent) of ``model`` on ``data.val``.

    Under DDP each process detects on its shard; rank 0 gathers all detections, writes and
    scores them, and every process returns rank 0's numbers.
    """
    model.eval()
    memory_format = torch.channels_last if context.channels_last else torch.contiguous_format
    detections: list[dict[str, Any]] = []
    for images, targets in data.val:
        images = data.normalize(images.to(context.device, non_blocking=True))
        images = images.contiguous(memory_format=memory_format)
        with context.autocast():
            outputs = model(list(images))
        detections += coco_detections(outputs, targets, data.category_ids)
    gathered = distributed.gather_to_main(detections)
    scores = None
    if gathered is not None:
        if context.final and context.job_dir is not None:
            write_detections(context.job_dir, gathered, data.val_ann)
        scores = score_detections(data.val.dataset.coco, gathered)
    return distributed.broadcast_from_main(scores)


def build_detection(cfg: Any, device: torch.device) -> TaskParts:
    """RetinaNet over ``cfg.backbone`` (regularizer placed in it) on the COCO-layout ``cfg.data``."""
    from runners.config.network import backbone_name, build_model

    data = build_detection_data(cfg.data, cfg.batch, cfg.seed, pin_memory=device.type == "cuda")
    data = distributed.shard_loaders(data, cfg.seed)  # this process's shards under torchrun
    backbone, placements = build_model(cfg, num_classes=len(data.classes))
    model = build_retinanet(
        backbone,
        backbone_name(cfg),
        num_classes=len(data.classes),
        image_size=cfg.data.image_size,
        fpn_channels=cfg.task.fpn_channels,
        anchor_sizes=list(cfg.task.anchor_sizes),
        mean=list(cfg.data.mean),
        std=list(cfg.data.std),
        detections_per_img=cfg.task.detections_per_img,
        score_thresh=cfg.task.score_thresh,
    )

    def loss(model: nn.Module, images: torch.Tensor, targets: list[dict[str, Any]]) -> torch.Tensor:
        losses = model(list(images), targets)
        return sum(losses.values())

    def move_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
        return [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]

    return TaskParts(
        data=data,
        model=model,
        placements=placements,
        loss=loss,
        evaluate=lambda model, context: evaluate_detector(model, data, context),
        move_targets=move_targets,
        eval_every=cfg.task.eval_every,
    )
