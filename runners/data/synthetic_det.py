"""A procedurally generated detection set, written once to disk in COCO layout.

Each image holds zero to ``max_objects`` shapes (the classes of :mod:`runners.data.synthetic`) at
sizes spread log-uniformly from small to large in COCO's sense (area below 32², between 32² and
96², above 96²), on the same cluttered backgrounds. Objects overlap little (IoU <= 0.2), and about
one image in eight has no object at all, so evaluation meets images without annotations.

Annotations follow the COCO instances format: ``bbox`` is ``[x, y, w, h]`` of the drawn pixels,
``area`` counts the drawn pixels (COCO's area is the mask's, not the box's), ``iscrowd`` is 0.
Category ids are deliberately not contiguous (``1, 4, 7, ...``), as COCO's are not, so the
label mapping is exercised on every run.

The set is a pure function of ``(seed, split, index)`` and the size parameters, and is written
to a temporary directory and renamed into place, as :mod:`runners.data.synthetic` does::

    <root>/train/000000.png ...   <root>/annotations/instances_train.json
    <root>/val/000000.png ...     <root>/annotations/instances_val.json
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from runners.data.synthetic import (
    CLASS_NAMES,
    _background,
    _draw_shape,
    _random_colour,
    materialize,
)

__all__ = [
    "DET_GENERATOR_VERSION",
    "category_id",
    "ensure_synthetic_detection_dataset",
    "render_detection_image",
]

#: Bump when the drawing code changes, so that cached sets are regenerated.
DET_GENERATOR_VERSION = 1
_SPLITS = {"train": 0, "val": 1}
_EMPTY_IMAGE_RATE = 0.125
_MAX_IOU = 0.2


def category_id(label: int) -> int:
    """COCO category id of class ``label`` (0-based): 1, 4, 7, ... (non-contiguous on purpose)."""
    return 3 * label + 1


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def render_detection_image(
    seed: int,
    split: str,
    index: int,
    *,
    size: int,
    num_classes: int,
    max_objects: int,
    min_side: float,
    max_side: float,
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Image ``index`` of ``split`` and its objects ``{label, bbox [x, y, w, h], area}``."""
    rng = np.random.default_rng([seed, _SPLITS[split], index, DET_GENERATOR_VERSION, 17])
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    # Clutter smaller than the smallest object: small blobs and thin line segments.
    for _ in range(int(rng.integers(2, 6))):
        r = rng.uniform(0.15, 0.35) * min_side
        cx, cy = rng.uniform(0, size, size=2)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_random_colour(rng))
    for _ in range(int(rng.integers(1, 4))):
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        draw.line((x0, y0, x1, y1), fill=_random_colour(rng), width=1)
    count = 0 if rng.random() < _EMPTY_IMAGE_RATE else int(rng.integers(1, max_objects + 1))
    boxes: list[tuple[float, float, float, float]] = []
    objects = []
    for _ in range(count):
        for _attempt in range(20):
            side = float(np.exp(rng.uniform(np.log(min_side), np.log(max_side))))
            x0, y0 = rng.uniform(0, size - side, size=2)
            box = (float(x0), float(y0), float(x0 + side), float(y0 + side))
            if all(_iou(box, other) <= _MAX_IOU for other in boxes):
                break
        else:
            continue
        label = int(rng.integers(0, num_classes))
        colour = _random_colour(rng, 110)
        mask = Image.new("L", (size, size), 0)
        _draw_shape(ImageDraw.Draw(mask), label, box, 255)
        _draw_shape(draw, label, box, colour)
        pixels = np.asarray(mask) > 0
        if not pixels.any():
            continue
        ys, xs = np.nonzero(pixels)
        left, top = int(xs.min()), int(ys.min())
        bbox = [left, top, int(xs.max()) + 1 - left, int(ys.max()) + 1 - top]
        boxes.append(box)
        objects.append({"label": label, "bbox": bbox, "area": int(pixels.sum())})
    # Later objects are drawn over earlier ones; with IoU <= 0.2 the boxes stay truthful enough,
    # and the areas are those of each shape's own mask, as COCO's polygons would give.
    return img, objects


def _fingerprint(spec: dict[str, Any]) -> str:
    blob = json.dumps(spec, sort_keys=True)
    return f"synthetic-det-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _categories(num_classes: int) -> list[dict[str, Any]]:
    """The COCO ``categories`` of the first ``num_classes`` shapes."""
    return [
        {"id": category_id(k), "name": CLASS_NAMES[k], "supercategory": "shape"}
        for k in range(num_classes)
    ]


def _annotation(annotation_id: int, image_id: int, obj: dict[str, Any]) -> dict[str, Any]:
    """One object of :func:`render_detection_image` as a COCO instance annotation."""
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id(obj["label"]),
        "bbox": obj["bbox"],
        "area": obj["area"],
        "iscrowd": 0,
    }


def _write_split(
    staging: Path,
    split: str,
    spec: dict[str, Any],
    categories: list[dict[str, Any]],
    render: Callable[[str, int], tuple[Image.Image, list[dict[str, Any]]]],
) -> None:
    """Render ``spec[split]`` images into ``staging/<split>/`` and write their annotations to
    ``staging/annotations/instances_<split>.json``."""
    (staging / split).mkdir()
    size = spec["size"]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(spec[split]):
        img, objects = render(split, index)
        name = f"{index:06d}.png"
        img.save(staging / split / name)
        image_id = index + 1  # COCO ids start at 1
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for obj in objects:
            annotations.append(_annotation(len(annotations) + 1, image_id, obj))
    instances = {
        "info": {"description": "ablation-harness synthetic detection set", **spec},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (staging / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))


def _build(
    staging: Path,
    *,
    spec: dict[str, Any],
    categories: list[dict[str, Any]],
    render: Callable[[str, int], tuple[Image.Image, list[dict[str, Any]]]],
) -> None:
    """Write both splits into ``staging``, then the manifest that marks the set complete."""
    (staging / "annotations").mkdir()
    for split in _SPLITS:
        _write_split(staging, split, spec, categories, render)
    (staging / "manifest.json").write_text(json.dumps(spec, indent=2))


def ensure_synthetic_detection_dataset(
    cache_dir: str | os.PathLike[str],
    *,
    seed: int,
    image_size: int,
    num_classes: int,
    train_images: int,
    val_images: int,
    max_objects: int = 4,
) -> Path:
    """Generate the set into ``cache_dir`` unless it is there already; return its root."""
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"num_classes must be in [1, {len(CLASS_NAMES)}], got {num_classes}")
    spec = {
        "version": DET_GENERATOR_VERSION,
        "seed": seed,
        "size": image_size,
        "classes": num_classes,
        "train": train_images,
        "val": val_images,
        "max_objects": max_objects,
    }
    root = Path(cache_dir) / _fingerprint(spec)
    if (root / "manifest.json").is_file():
        return root
    # Object sides from ~1/12 of the image to ~7/8 of it: small, medium and large in COCO's
    # area ranges at the default 128 px (side 11 .. 112).
    render = partial(
        render_detection_image,
        seed,
        size=image_size,
        num_classes=num_classes,
        max_objects=max_objects,
        min_side=image_size / 12,
        max_side=image_size * 7 / 8,
    )
    build = partial(_build, spec=spec, categories=_categories(num_classes), render=render)
    return materialize(root, build)
