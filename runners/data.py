"""Data pipelines: an ImageNet-layout folder read by torchvision's ImageFolder.

``data=synthetic`` first generates such a folder (``runners.synthetic``) and then takes exactly
the same path as ``data=imagefolder``. Augmentation uses torchvision transforms v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from runners.synthetic import ensure_synthetic_dataset

__all__ = ["DataBundle", "build_data", "dataset_root"]


@dataclass
class DataBundle:
    train: DataLoader
    val: DataLoader
    classes: list[str]
    root: Path


def dataset_root(data: Any) -> Path:
    """The folder with ``train/`` and ``val/``: generated for ``synthetic``, given otherwise."""
    if data.name == "synthetic":
        return ensure_synthetic_dataset(
            data.cache_dir,
            seed=data.seed,
            image_size=data.image_size,
            num_classes=data.num_classes,
            train_per_class=data.train_per_class,
            val_per_class=data.val_per_class,
        )
    root = Path(data.root).expanduser()
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"data.root: {root / split} does not exist (expected <root>/train/<class>/* and <root>/val/<class>/*)"
            )
    return root


def _transforms(data: Any, train: bool) -> v2.Compose:
    size = data.image_size
    steps: list[Any] = [v2.ToImage()]
    if train and data.augment:
        if data.crop == "resized":
            steps.append(v2.RandomResizedCrop(size, antialias=True))
        else:
            steps.append(v2.RandomCrop(size, padding=max(1, size // 8), padding_mode="reflect"))
        steps.append(v2.RandomHorizontalFlip())
    elif data.crop == "resized":
        steps += [v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)]
    else:
        steps.append(v2.Resize((size, size), antialias=True))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data.mean), list(data.std))]
    return v2.Compose(steps)


def build_data(data: Any, batch: int, seed: int, pin_memory: bool = False) -> DataBundle:
    """Train and validation loaders. The train loader yields whole optimizer-step batches
    (``batch`` samples), shuffled by a generator seeded with the run's ``seed``; the runner
    splits each into ``subdivisions`` mini-batches.
    """
    root = dataset_root(data)
    train_set = datasets.ImageFolder(str(root / "train"), transform=_transforms(data, train=True))
    val_set = datasets.ImageFolder(str(root / "val"), transform=_transforms(data, train=False))
    if train_set.classes != val_set.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    generator = torch.Generator().manual_seed(seed)
    common = {
        "num_workers": data.workers,
        "pin_memory": pin_memory,
        "persistent_workers": data.workers > 0,
    }
    train = DataLoader(
        train_set, batch_size=batch, shuffle=True, generator=generator, drop_last=False, **common
    )
    val = DataLoader(val_set, batch_size=max(batch, 256), shuffle=False, **common)
    return DataBundle(train=train, val=val, classes=list(train_set.classes), root=root)
