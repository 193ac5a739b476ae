"""Hostile image files: truncated files and decompression bombs fail the job naming the file."""

from __future__ import annotations

import json
import warnings

import pytest
from PIL import Image

from runners.config import ConfigError, config_hash, resolved_container
from runners.config.preflight import compose
from runners.core.record import load_record
from runners.data.coco import CocoDetectionSet
from runners.data.images import DataError, ImageReader, read_rgb
from runners.data.loaders import build_data
from tests.conftest import TINY, TINY_COMMON, run_cli

PILLOW_DEFAULT = 89_478_485


def _image_tree(root, classes=("a", "b"), per_class=2, side=32):
    for split in ("train", "val"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (side, side), (40 * index, 10 * i, 90)).save(folder / f"{i}.png")
    return root


def _coco_set(root, side=40):
    (root / "imgs").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (side, side), (10, 20, 30)).save(root / "imgs" / name)
    dataset = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}],
        "categories": [{"id": 1, "name": "x"}],
    }
    (root / "instances.json").write_text(json.dumps(dataset))
    return root


@pytest.mark.parametrize(("side", "limit"), [(40, 1000), (64, 1000), (40, 1600)])
def test_the_pixel_limit_is_exact_and_an_error(tmp_path, side, limit, monkeypatch):
    # Pillow alone only warns between its limit and twice it, and raises its own error above;
    # with the harness both are the same DataError at exactly data.max_image_pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    path = tmp_path / "big.png"
    Image.new("RGB", (side, side)).save(path)
    if side * side <= limit:
        assert read_rgb(str(path), limit).size == (side, side)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on the way either
        with pytest.raises(DataError) as info:
            read_rgb(str(path), limit)
    assert str(info.value) == (
        f"{path}: unreadable image ({side * side:,} pixels, over data.max_image_pixels="
        f"{limit:,}: a decompression bomb?)"
    )
    assert limit == Image.MAX_IMAGE_PIXELS  # Pillow's own checks use the same limit


def test_coco_images_go_through_the_same_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    root = _coco_set(tmp_path)
    bomb = CocoDetectionSet(root / "imgs", root / "instances.json", 32, False, False, 1000)
    with pytest.raises(
        DataError,
        match=rf"^{root}/imgs/a\.png: unreadable image \(1,600 pixels, over data\.max_image_pixels=1,000",
    ):
        bomb[0]
    broken = root / "imgs" / "b.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated: a bare OSError before
    dataset = CocoDetectionSet(root / "imgs", root / "instances.json", 32, False, False, 10**6)
    assert dataset[0][0].shape == (3, 32, 32)
    with pytest.raises(DataError, match=rf"^{broken}: unreadable image \(OSError: "):
        dataset[1]


def test_the_limit_applies_in_dataloader_workers(tmp_path, make_cfg, monkeypatch):
    # The worker does not inherit the limit from this process: the reader sets it there.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    root = _image_tree(tmp_path / "data")
    cfg = make_cfg("data=imagefolder", f"data.root={root}", "data.image_size=32",
                   "data.max_image_pixels=1000", "data.workers=1")  # fmt: skip
    bundle = build_data(cfg.data, batch=4, seed=0)
    assert isinstance(bundle.train.dataset.loader, ImageReader)
    with pytest.raises(DataError) as info:
        next(iter(bundle.train))
    line = DataError.one_line(info.value)
    assert (
        line.startswith(f"{root}/train/")
        and "1,024 pixels, over data.max_image_pixels=1,000" in line
    )
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT  # set in the worker, not here


def test_the_limit_is_a_checked_key_outside_the_config_hash(make_cfg):
    with pytest.raises(ConfigError, match=r"^data\.max_image_pixels must be >= 1, got 0$"):
        compose([*TINY, "data.max_image_pixels=0"])
    config = resolved_container(make_cfg())
    base = config_hash(config)
    # Limits decide whether a run may start, never what it computes: raising one keeps the
    # completed runs of a study (and the hash of every run recorded before the keys existed).
    config["data"] |= {"max_image_pixels": 1000, "max_annotation_mb": 1.0}
    config["backbone"]["max_memory_gb"] = 1.0
    assert config_hash(config) == base
    del config["data"]["max_image_pixels"], config["data"]["max_annotation_mb"]
    del config["backbone"]["max_memory_gb"]
    assert config_hash(config) == base
    config["data"]["image_size"] = 64
    assert config_hash(config) != base


def test_cli_a_bomb_found_during_training_fails_the_job_with_one_line(tmp_path):
    root = _image_tree(tmp_path / "data")
    job = tmp_path / "job"
    result = run_cli(
        *TINY_COMMON, "data=imagefolder", f"data.root={root}", "data.image_size=32", "data.workers=1",
        "data.max_image_pixels=1000", "batch=4", f"hydra.run.dir={job}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"failed: {job}: {root}/train/")
    assert lines[0].endswith(
        ": unreadable image (1,024 pixels, over data.max_image_pixels=1,000: a decompression bomb?)"
    )
    record = load_record(job)
    assert record.status == "failed" and "data.max_image_pixels=1,000" in record.error
