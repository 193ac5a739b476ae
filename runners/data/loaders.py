"""Data pipelines: an ImageNet-layout folder read by torchvision's ImageFolder.

``data=synthetic`` first generates such a folder (``runners.data.synthetic``) and then takes exactly
the same path as ``data=imagefolder``. Augmentation uses torchvision transforms v2 on uint8
images; conversion to float and normalisation happen once per batch on the training device
(:class:`BatchNormalizer`, as timm's prefetch loader does), which moves a quarter of the bytes
to the GPU and takes two per-image transforms off the loader.

The folder is listed by :func:`runners.data.image_folder.scan_split` (torchvision's order, but with
symlink-loop detection and an error for an empty class), and images are decoded by
:class:`runners.data.images.ImageReader` under ``data.max_image_pixels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from runners.data.image_folder import scan_split
from runners.data.images import ImageReader
from runners.data.sampler import EpochShuffleSampler
from runners.data.synthetic import ensure_synthetic_dataset, generator_options

__all__ = ["BatchNormalizer", "DataBundle", "build_data", "dataset_root", "train_eval_subset"]


class BatchNormalizer:
    """uint8 ``Tensor[N, C, H, W]`` -> float32 ``(x / 255 - mean) / std``, on the batch's device."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self._device: torch.device | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self._device != images.device:
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
            self._device = images.device
        return (images.float() - self.mean) / self.std


@dataclass
class DataBundle:
    train: DataLoader
    val: DataLoader
    classes: list[str]
    root: Path
    #: Applied by the runner to every batch after it reaches the device.
    normalize: BatchNormalizer
    #: Training images without augmentation, for scoring the model on what it trained on
    #: (:func:`train_eval_subset`); ``None`` when not asked for.
    train_eval: DataLoader | None = None


class _CachedLoader(ImageReader):
    """ImageFolder's loader with a memo of decoded RGB images (one per worker process)."""

    def __init__(self, max_pixels: int) -> None:
        super().__init__(max_pixels)
        self._images: dict[str, Image.Image] = {}

    def __call__(self, path: str) -> Image.Image:
        image = self._images.get(path)
        if image is None:
            image = super().__call__(path)
            self._images[path] = image
        return image


class _ImageFolder(datasets.ImageFolder):
    """torchvision's ImageFolder listed by :func:`~runners.data.image_folder.scan_split`."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes, self._scanned = scan_split(directory)
        return classes, {name: index for index, name in enumerate(classes)}

    def make_dataset(self, *args: Any, **kwargs: Any) -> list[tuple[str, int]]:
        samples, self._scanned = self._scanned, []  # kept once, in ``samples``
        return samples


def dataset_root(data: Any) -> Path:
    """The folder with ``train/`` and ``val/``: generated for ``synthetic``, given otherwise."""
    if data.name == "synthetic":
        options = generator_options(data, "train_per_class", "val_per_class")
        return ensure_synthetic_dataset(data.cache_dir, **options)
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
    return v2.Compose(steps)


def train_eval_subset(size: int, samples: int) -> list[int]:
    """At most ``samples`` indices of a ``size``-image training set, evenly spaced.

    ImageFolder lists images class by class, so evenly spaced indices keep the classes'
    proportions; the subset depends on nothing else, so every run of a study (any seed, any
    arm) is scored on the same images.
    """
    if samples <= 0 or size == 0:
        return []
    if samples >= size:
        return list(range(size))
    return torch.linspace(0, size - 1, samples).round().long().unique().tolist()


def build_data(
    data: Any, batch: int, seed: int, pin_memory: bool = False, *, train_eval_samples: int = 0
) -> DataBundle:
    """Train and validation loaders. The train loader yields whole optimizer-step batches
    (``batch`` samples) in the order of :class:`~runners.data.sampler.EpochShuffleSampler` (a pure
    function of the run's ``seed`` and the epoch); the runner splits each into ``subdivisions``
    mini-batches. With ``train_eval_samples`` > 0, ``train_eval`` loads that many training images
    (:func:`train_eval_subset`) with the validation transforms.
    """
    root = dataset_root(data)
    pixels = data.max_image_pixels
    loader = _CachedLoader(pixels) if data.cache_images else ImageReader(pixels)
    train_set = _ImageFolder(
        str(root / "train"), transform=_transforms(data, train=True), loader=loader
    )
    val_set = _ImageFolder(
        str(root / "val"), transform=_transforms(data, train=False), loader=loader
    )
    if train_set.classes != val_set.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    generator = torch.Generator().manual_seed(seed)
    common = {
        "num_workers": data.workers,
        "pin_memory": pin_memory,
        "persistent_workers": data.workers > 0,
    }
    # The loader's own generator only seeds workers; it keeps the global RNG (augmentation)
    # untouched when an epoch's iterator is created, which exact resumption relies on.
    train = DataLoader(
        train_set,
        batch_size=batch,
        sampler=EpochShuffleSampler(len(train_set), seed),
        generator=generator,
        drop_last=False,
        **common,
    )
    val = DataLoader(val_set, batch_size=max(batch, 256), shuffle=False, **common)
    train_eval = None
    subset = train_eval_subset(len(train_set), train_eval_samples)
    if subset:
        # The training split seen as the validation split is: no augmentation.
        plain = _ImageFolder(
            str(root / "train"), transform=_transforms(data, train=False), loader=loader
        )
        train_eval = DataLoader(
            torch.utils.data.Subset(plain, subset),
            batch_size=val.batch_size,
            shuffle=False,
            **common,
        )
    normalize = BatchNormalizer(list(data.mean), list(data.std))
    return DataBundle(
        train=train,
        val=val,
        classes=list(train_set.classes),
        root=root,
        normalize=normalize,
        train_eval=train_eval,
    )
