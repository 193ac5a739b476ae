"""The synthetic set: deterministic in its seed, a real ImageFolder tree, read by the same loader."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from PIL import Image
from torchvision import datasets

from runners.data.loaders import build_data
from runners.data.synthetic import CLASS_NAMES, ensure_synthetic_dataset, render_image


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        h.update(str(path.relative_to(root)).encode())
        h.update(np.asarray(Image.open(path)).tobytes())
    return h.hexdigest()


def _make(tmp_path, name, seed):
    return ensure_synthetic_dataset(
        tmp_path / name,
        seed=seed,
        image_size=32,
        num_classes=10,
        train_per_class=4,
        val_per_class=2,
    )


def test_same_seed_gives_identical_images(tmp_path):
    assert _digest(_make(tmp_path, "a", 0)) == _digest(_make(tmp_path, "b", 0))


def test_another_seed_gives_different_images(tmp_path):
    a, b = _make(tmp_path, "a", 0), _make(tmp_path, "b", 1)
    assert sorted(p.name for p in a.rglob("*.png")) == sorted(p.name for p in b.rglob("*.png"))
    assert _digest(a) != _digest(b)


def test_tree_is_an_imagefolder_with_every_class(tmp_path):
    root = _make(tmp_path, "a", 0)
    train = datasets.ImageFolder(str(root / "train"))
    val = datasets.ImageFolder(str(root / "val"))
    assert sorted(train.classes) == sorted(CLASS_NAMES)
    assert len(train) == 40 and len(val) == 20
    image, _label = train[0]
    assert image.size == (32, 32) and image.mode == "RGB"
    assert not list((tmp_path / "a").glob(".tmp-*")), "staging directory left behind"


def test_generation_is_cached(tmp_path):
    root = _make(tmp_path, "a", 0)
    marker = root / "train" / CLASS_NAMES[0] / "000000.png"
    mtime = marker.stat().st_mtime_ns
    assert _make(tmp_path, "a", 0) == root
    assert marker.stat().st_mtime_ns == mtime


def test_class_evidence_is_not_colour():
    # Same class, different index: the object's colour varies, so colour cannot be the label.
    means = [
        np.asarray(render_image(0, "train", i, 0, 32)).reshape(-1, 3).mean(0) for i in range(20)
    ]
    assert np.std(means, axis=0).min() > 5


def test_synthetic_and_imagefolder_share_the_loader(make_cfg):
    cfg = make_cfg()
    synthetic = build_data(cfg.data, batch=8, seed=0)
    folder_cfg = make_cfg(
        "data=imagefolder", f"data.root={synthetic.root}", "data.image_size=32", "data.workers=0"
    )
    folder = build_data(folder_cfg.data, batch=8, seed=0)
    assert folder.classes == synthetic.classes
    assert len(folder.train.dataset) == len(synthetic.train.dataset)
    images, labels = next(iter(synthetic.train))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (8,)
    normalized = synthetic.normalize(images)
    expected = (images.float() / 255 - torch.tensor(cfg.data.mean).view(1, 3, 1, 1)) / torch.tensor(
        cfg.data.std
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(normalized, expected)


def test_image_cache_returns_the_same_pixels(make_cfg):
    cached = build_data(
        make_cfg("data.cache_images=true", "data.augment=false").data, batch=64, seed=0
    )
    plain = build_data(
        make_cfg("data.cache_images=false", "data.augment=false").data, batch=64, seed=0
    )
    for _ in range(2):  # the second pass is served from the cache
        for (a, _), (b, _) in zip(cached.val, plain.val, strict=True):
            assert torch.equal(a, b)


def test_staging_folders_of_killed_builds_are_removed_and_live_ones_kept(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from runners.data.synthetic import materialize

    host = socket.gethostname().replace("-", "_")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    killed = tmp_path / f".tmp-{host}-{dead}-abc"  # a build whose process is gone
    live = tmp_path / f".tmp-{host}-{os.getppid()}-def"  # a build still running
    other_host = tmp_path / f".tmp-otherhost-{dead}-ghi"  # cannot be judged from here
    for folder in (killed, live, other_host):
        (folder / "train").mkdir(parents=True)
    root = materialize(
        tmp_path / "set", lambda staging: (staging / "manifest.json").write_text("{}")
    )
    assert (root / "manifest.json").is_file()
    assert not killed.exists() and live.exists() and other_host.exists()
