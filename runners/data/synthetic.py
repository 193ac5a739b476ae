"""A procedurally generated image-classification set, written once as an ImageFolder tree.

Each image holds one object whose *shape* is the class (disc, square, triangle, plus, ring,
horizontal bars, vertical bars, checker, diamond, cross), at a random position, size and colour,
on a cluttered background (a colour gradient, noise, small distractor blobs and line segments)
and partly covered by an occluder. Colour and position carry no class evidence, so a network
must learn spatially structured features; the train split is small enough to overfit, so a
regularizer has something to do.

Every image is a pure function of ``(seed, split, index)`` (NumPy's ``default_rng`` seeded with
that triple), so the set is identical for the same seed on any machine and different for
another seed. The tree is written to a temporary directory and renamed into place, so parallel
jobs never see a half-written set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "ensure_synthetic_dataset",
    "generator_options",
    "materialize",
    "render_image",
]

#: Bump when the drawing code changes, so that cached sets are regenerated.
GENERATOR_VERSION = 4
CLASS_NAMES = (
    "disc",
    "square",
    "triangle",
    "plus",
    "ring",
    "hbars",
    "vbars",
    "checker",
    "diamond",
    "cross",
)
_SPLITS = {"train": 0, "val": 1}


def _random_colour(
    rng: np.random.Generator, low: int = 40, high: int = 256
) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, size=3))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A random two-colour gradient plus Gaussian noise."""
    a = np.array(_random_colour(rng, 0, 170), dtype=np.float32)
    b = np.array(_random_colour(rng, 0, 170), dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.0) / 2.0
    img = a * (1 - t[..., None]) + b * t[..., None]
    img += rng.normal(0, 10, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _draw_shape(
    draw: ImageDraw.ImageDraw, label: int, box: tuple[float, float, float, float], colour
) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bar = max(1.0, w / 5)
    name = CLASS_NAMES[label]
    if name == "disc":
        draw.ellipse(box, fill=colour)
    elif name == "square":
        draw.rectangle(box, fill=colour)
    elif name == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif name == "plus":
        draw.rectangle((cx - bar, y0, cx + bar, y1), fill=colour)
        draw.rectangle((x0, cy - bar, x1, cy + bar), fill=colour)
    elif name == "ring":
        draw.ellipse(box, outline=colour, width=max(1, round(w / 6)))
    elif name in ("hbars", "vbars"):
        stripes = 3
        for i in range(stripes):
            if name == "hbars":
                top = y0 + i * h / stripes
                draw.rectangle((x0, top, x1, top + h / (2 * stripes)), fill=colour)
            else:
                left = x0 + i * w / stripes
                draw.rectangle((left, y0, left + w / (2 * stripes), y1), fill=colour)
    elif name == "checker":
        cells = 3
        for i in range(cells):
            for j in range(cells):
                if (i + j) % 2 == 0:
                    left, top = x0 + i * w / cells, y0 + j * h / cells
                    draw.rectangle((left, top, left + w / cells, top + h / cells), fill=colour)
    elif name == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif name == "cross":
        width = max(1, round(bar * 1.5))
        draw.line((x0, y0, x1, y1), fill=colour, width=width)
        draw.line((x0, y1, x1, y0), fill=colour, width=width)
    else:  # pragma: no cover - CLASS_NAMES and this function change together
        raise ValueError(f"no drawing for class {name!r}")


def render_image(seed: int, split: str, index: int, label: int, size: int) -> Image.Image:
    """Draw image ``index`` of ``split`` with class ``label``: deterministic in all four."""
    rng = np.random.default_rng([seed, _SPLITS[split], index, GENERATOR_VERSION])
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    # Clutter: small blobs and line segments, smaller than any object.
    for _ in range(int(rng.integers(2, 6))):
        r = rng.uniform(0.03, 0.08) * size
        cx, cy = rng.uniform(0, size, size=2)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_random_colour(rng))  # any colour
    for _ in range(int(rng.integers(1, 4))):
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        draw.line((x0, y0, x1, y1), fill=_random_colour(rng), width=1)
    # The object: its shape is the class; size, position and colour are nuisance.
    side = rng.uniform(0.4, 0.65) * size
    x0 = rng.uniform(0, size - side)
    y0 = rng.uniform(0, size - side)
    _draw_shape(draw, label, (x0, y0, x0 + side, y0 + side), _random_colour(rng, 110))
    # Occluder: a rectangle over up to a quarter of the object.
    if rng.random() < 0.6:
        ow, oh = rng.uniform(0.15, 0.35, size=2) * side
        ox = rng.uniform(x0 - ow / 2, x0 + side - ow / 2)
        oy = rng.uniform(y0 - oh / 2, y0 + side - oh / 2)
        draw.rectangle((ox, oy, ox + ow, oy + oh), fill=_random_colour(rng, 0))
    return img


def _fingerprint(
    seed: int, size: int, num_classes: int, train_per_class: int, val_per_class: int
) -> str:
    spec = (
        f"v{GENERATOR_VERSION}-s{seed}-i{size}-c{num_classes}-t{train_per_class}-v{val_per_class}"
    )
    return f"synthetic-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def ensure_synthetic_dataset(
    cache_dir: str | os.PathLike[str],
    *,
    seed: int,
    image_size: int,
    num_classes: int,
    train_per_class: int,
    val_per_class: int,
) -> Path:
    """Generate the set into ``cache_dir`` unless it is there already; return its root.

    The root holds ``train/<class>/<index>.png``, ``val/<class>/<index>.png`` and a
    ``manifest.json`` with the generation parameters.
    """
    if not 2 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"num_classes must be in [2, {len(CLASS_NAMES)}], got {num_classes}")
    cache = Path(cache_dir)
    root = cache / _fingerprint(seed, image_size, num_classes, train_per_class, val_per_class)
    if (root / "manifest.json").is_file():
        return root

    def build(staging: Path) -> None:
        counts = {"train": train_per_class, "val": val_per_class}
        for split, per_class in counts.items():
            index = 0
            for label in range(num_classes):
                folder = staging / split / CLASS_NAMES[label]
                folder.mkdir(parents=True)
                for _ in range(per_class):
                    render_image(seed, split, index, label, image_size).save(
                        folder / f"{index:06d}.png"
                    )
                    index += 1
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "image_size": image_size,
            "classes": list(CLASS_NAMES[:num_classes]),
            "train_per_class": train_per_class,
            "val_per_class": val_per_class,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))

    return materialize(root, build)


def generator_options(data: Any, *sizes: str) -> dict[str, Any]:
    """A generated set's keywords read from its data config: ``seed``, ``image_size`` and
    ``num_classes``, which every generator takes, and the split sizes named in ``sizes``."""
    return {key: getattr(data, key) for key in ("seed", "image_size", "num_classes", *sizes)}


def _remove_dead_staging(parent: Path) -> None:
    """Delete staging folders of this host's processes that are gone (killed mid-build).

    Staging folders are named ``.tmp-<host>-<pid>-<random>``; a folder of another host, or of
    a live process, is left alone (it may be a build in progress).
    """
    host = socket.gethostname().replace("-", "_")
    for staging in parent.glob(f".tmp-{host}-*-*"):
        pid = staging.name.split("-")[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(staging, ignore_errors=True)
        log.info("removed %s: the build that made it was interrupted", staging)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def materialize(root: Path, build: Callable[[Path], None]) -> Path:
    """Create the data set folder ``root`` atomically: ``build(staging)`` fills a temporary
    folder beside it, which is renamed into place. ``root`` is complete once it has a
    ``manifest.json``; a parallel job that loses the rename race keeps the winner's copy. The
    staging folders of builds that were killed are removed first."""
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(root.parent)
    host = socket.gethostname().replace("-", "_")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{host}-{os.getpid()}-", dir=root.parent))
    try:
        build(staging)
        try:
            os.rename(staging, root)
        except OSError:
            if not (root / "manifest.json").is_file():  # not a lost race with another job
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root
