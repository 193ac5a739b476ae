"""Detection data in COCO layout: images in ``<root>/<split>/``, instances in ``<ann>/instances_<split>.json``.

``data=coco`` reads the real set; ``data=synthetic_det`` first generates one
(:mod:`runners.data.synthetic_det`) and then takes exactly this path. Annotations are checked by
:mod:`runners.data.coco_validate` (the preflight's parse is reused) and indexed by pycocotools (the
same code that scores them); images are decoded by :func:`runners.data.images.read_rgb` under
``data.max_image_pixels``. Each image is letterboxed (longest side to
``image_size``, padded right and bottom) with torchvision transforms v2, so boxes follow every
geometric step; training adds a horizontal flip. Crowd boxes are left out of training targets
(as torchvision's detection references do) but stay in the ground truth COCOeval reads.

Category ids need not be contiguous: class ``k`` of the model is the ``k``-th category id in
ascending order, and :attr:`CocoDetectionSet.category_ids` maps it back.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from runners.data.coco_validate import validated_coco
from runners.data.images import read_rgb
from runners.data.loaders import BatchNormalizer
from runners.data.sampler import EpochShuffleSampler
from runners.data.synthetic import generator_options
from runners.data.synthetic_det import ensure_synthetic_detection_dataset

__all__ = [
    "CocoDetectionSet",
    "DetectionData",
    "annotation_limit",
    "build_detection_data",
    "coco_paths",
    "collate_detection",
    "load_coco",
    "validate_annotations",
]


def load_coco(
    ann_file: str | Path, images_dir: str | Path | None = None, max_bytes: int | None = None
) -> Any:
    """pycocotools' COCO index of ``ann_file``, checked by :mod:`runners.data.coco_validate`.

    ``images_dir``: where every ``file_name`` must be (``None``: the names are only checked to be
    relative paths without ``..``, for scoring, which reads no image). ``max_bytes``: the
    largest file read (``None``: no limit). A bad file raises one
    :class:`~runners.data.images.DataError` naming it and the entry.
    """
    from pycocotools.coco import COCO

    dataset = validated_coco(ann_file, images_dir, max_bytes)
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


class CocoDetectionSet(Dataset):
    """``(uint8 image [3, S, S], target)`` pairs; target has ``boxes`` (xyxy, letterboxed
    pixels), ``labels`` (0-based class), ``image_id`` and ``scale`` (letterboxed / original)."""

    def __init__(
        self,
        images_dir: Path,
        ann_file: Path,
        image_size: int,
        train: bool,
        augment: bool,
        max_pixels: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.ann_file = Path(ann_file)
        self.coco = load_coco(self.ann_file, self.images_dir, max_bytes)
        self.max_pixels = max_pixels
        self.image_ids = sorted(self.coco.imgs)
        self.category_ids = sorted(self.coco.cats)
        self._label_of = {cat: k for k, cat in enumerate(self.category_ids)}
        self.image_size = image_size
        steps: list[Any] = [v2.Resize(size=None, max_size=image_size, antialias=True)]
        if train and augment:
            steps.append(v2.RandomHorizontalFlip())
        self.transform = v2.Compose(steps)
        self._cache: dict[int, Image.Image] = {}
        self.cache_images = False

    def __len__(self) -> int:
        return len(self.image_ids)

    def _image(self, image_id: int) -> Image.Image:
        image = self._cache.get(image_id)
        if image is None:
            path = self.images_dir / self.coco.imgs[image_id]["file_name"]
            image = read_rgb(str(path), self.max_pixels)
            if self.cache_images:
                self._cache[image_id] = image
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image_id = self.image_ids[index]
        image = self._image(image_id)
        width, height = image.size
        anns = [
            a
            for a in self.coco.imgToAnns.get(image_id, [])
            if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0
        ]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        labels = torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        img, boxes = self.transform(
            tv_tensors.Image(v2.functional.pil_to_tensor(image)),
            tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        )
        scale = img.shape[-1] / width
        pad = [0, 0, self.image_size - img.shape[-1], self.image_size - img.shape[-2]]
        img, boxes = v2.functional.pad(img, pad), v2.functional.pad(boxes, pad)
        boxes = boxes.as_subclass(torch.Tensor)
        keep = (boxes[:, 2] > boxes[:, 0] + 0.5) & (boxes[:, 3] > boxes[:, 1] + 0.5)
        target = {
            "boxes": boxes[keep],
            "labels": labels[keep],
            "image_id": image_id,
            "scale": scale,
        }
        return img.as_subclass(torch.Tensor), target


def collate_detection(
    batch: list[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Stack the (equal-sized, letterboxed) images; keep targets as a list."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


@dataclass
class DetectionData:
    train: DataLoader
    val: DataLoader
    #: Class names in the model's label order.
    classes: list[str]
    #: The model's label k is COCO category ``category_ids[k]``.
    category_ids: list[int]
    #: Ground truth of the validation split (the file COCOeval reads).
    val_ann: Path
    normalize: BatchNormalizer


def coco_paths(data: Any) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """The set's root and, per split, (images dir, instances json); generated for synthetic_det."""
    if data.name == "synthetic_det":
        options = generator_options(data, "train_images", "val_images")
        root = ensure_synthetic_detection_dataset(data.cache_dir, **options)
    else:
        root = Path(data.root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"data.root: {root} does not exist")
    ann_dir = Path(data.ann).expanduser()
    ann_dir = ann_dir if ann_dir.is_absolute() else root / ann_dir
    splits = {}
    for key in ("train_split", "val_split"):
        split = getattr(data, key)
        images, ann = root / split, ann_dir / f"instances_{split}.json"
        if not images.is_dir():
            raise FileNotFoundError(f"data.{key}: image folder {images} does not exist")
        if not ann.is_file():
            raise FileNotFoundError(f"data.ann: annotation file {ann} does not exist")
        splits[key] = (images, ann)
    return root, splits


def annotation_limit(data: Any) -> int:
    """``data.max_annotation_mb`` in bytes."""
    return int(data.max_annotation_mb * 1e6)


def validate_annotations(data: Any) -> None:
    """Check both splits' annotation files before anything is written (the preflight's call).

    Raises :class:`~runners.data.images.DataError` for a bad file and ``ValueError`` when the splits
    list different categories. The validated files are kept for :func:`build_detection_data`.
    """
    _, splits = coco_paths(data)
    categories = {}
    for key, (images, ann) in splits.items():
        dataset = validated_coco(ann, images, annotation_limit(data), keep=True)
        categories[key] = sorted(c["id"] for c in dataset["categories"])
    if categories["train_split"] != categories["val_split"]:
        raise ValueError(
            f"{splits['train_split'][1]} and {splits['val_split'][1]} list different categories"
        )


def build_detection_data(
    data: Any, batch: int, seed: int, pin_memory: bool = False
) -> DetectionData:
    """Train and validation loaders over a COCO-layout set; batches are whole optimizer steps."""
    _, splits = coco_paths(data)
    limits = {
        "max_pixels": data.max_image_pixels,
        "max_bytes": annotation_limit(data),
    }
    train_set = CocoDetectionSet(
        *splits["train_split"], data.image_size, True, data.augment, **limits
    )
    val_set = CocoDetectionSet(*splits["val_split"], data.image_size, False, False, **limits)
    train_set.cache_images = val_set.cache_images = bool(data.cache_images)
    if train_set.category_ids != val_set.category_ids:
        raise ValueError(
            f"{splits['train_split'][1]} and {splits['val_split'][1]} list different categories"
        )
    common = {
        "num_workers": data.workers,
        "pin_memory": pin_memory,
        "persistent_workers": data.workers > 0,
        "collate_fn": collate_detection,
    }
    generator = torch.Generator().manual_seed(seed)
    sampler = EpochShuffleSampler(len(train_set), seed)
    train = DataLoader(train_set, batch_size=batch, sampler=sampler, generator=generator, **common)
    val = DataLoader(val_set, batch_size=batch, shuffle=False, **common)
    names = [train_set.coco.cats[c].get("name", str(c)) for c in train_set.category_ids]
    return DetectionData(
        train=train,
        val=val,
        classes=names,
        category_ids=list(train_set.category_ids),
        val_ann=splits["val_split"][1],
        normalize=BatchNormalizer([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    )
