"""Hostile ImageFolder trees: an empty split or a symlink loop is one line, never a hang."""

from __future__ import annotations

import os

import pytest
from PIL import Image
from torchvision import datasets

from runners.config import ConfigError
from runners.config.preflight import compose
from runners.data.image_folder import scan_split
from runners.data.images import DataError
from runners.data.loaders import build_data
from tests.conftest import TINY_COMMON, run_cli


def _tree(root, classes=("a", "b"), per_class=2):
    for split in ("train", "val"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8)).save(root / split / name / f"{i}.png")
    return root


def _loop(folder):
    # Two links back to the parent: torchvision's walk doubles its paths at every level.
    (folder / "l1").symlink_to("..")
    (folder / "l2").symlink_to("..")


def test_the_listing_is_torchvisions(tmp_path):
    root = _tree(tmp_path / "data")
    train = root / "train"
    (train / "a" / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(train / "a" / "nested" / "deeper" / "x.JPG")
    (train / "a" / "notes.txt").write_text("not an image")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (8, 8)).save(elsewhere / "y.png")
    (train / "b" / "linked").symlink_to(elsewhere)  # a linked folder outside: fine, once
    (train / "b" / "z.png").symlink_to(elsewhere / "y.png")  # a linked file: fine
    reference = datasets.ImageFolder(str(train))
    assert scan_split(train) == (reference.classes, reference.samples)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: None, r"train: no class folders \(expected .*/train/<class>/<image>\)"),
        (lambda t: (t / "a").mkdir(), r"train/a: no image files in class folder 'a' \(expected \.jpg"),
        (lambda t: ((t / "a").mkdir(), (t / "a" / "x.txt").write_text("")), r"train/a: no image files"),
    ],
    ids=["no-class-folders", "empty-class", "no-images-in-class"],
)  # fmt: skip
def test_an_empty_train_split_is_a_config_error(tmp_path, make, message):
    root = _tree(tmp_path / "data")
    for folder in sorted((root / "train").iterdir()):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    make(root / "train")
    with pytest.raises(ConfigError, match=rf"^data\.root: {root}/{message}"):
        compose([*TINY_COMMON, "data=imagefolder", f"data.root={root}"])


def test_a_symlink_loop_is_found_at_once(tmp_path):
    root = _tree(tmp_path / "data")
    _loop(root / "train" / "a")
    with pytest.raises(
        DataError,
        match=rf"^{root}/train/a/l\d: a symlink loop: it is the folder {root}/train again",
    ):
        scan_split(root / "train")
    with pytest.raises(ConfigError, match=r"^data\.root: .*: a symlink loop: "):
        compose([*TINY_COMMON, "data=imagefolder", f"data.root={root}"])


def test_the_loader_lists_through_the_same_walk(tmp_path, make_cfg):
    # Even without the preflight (a tree changed after it), building the data never hangs.
    root = _tree(tmp_path / "data")
    cfg = make_cfg("data=imagefolder", f"data.root={root}", "data.image_size=8", "data.workers=0")
    assert len(build_data(cfg.data, batch=2, seed=0).train.dataset) == 4
    _loop(root / "val" / "b")
    with pytest.raises(DataError, match=r"val/b/l\d: a symlink loop"):
        build_data(cfg.data, batch=2, seed=0)


def test_one_folder_reached_twice_is_refused(tmp_path):
    root = _tree(tmp_path / "data")
    (root / "train" / "c").symlink_to(root / "train" / "a")  # class c = class a's images again
    (root / "val" / "c").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "c" / "0.png")
    with pytest.raises(
        ConfigError,
        match=r"train/c: one folder reached twice through a symlink: it is the folder .*/train/a again",
    ):
        compose([*TINY_COMMON, "data=imagefolder", f"data.root={root}"])


def test_train_and_val_must_have_the_same_classes(tmp_path):
    root = _tree(tmp_path / "data")
    os.rename(root / "val" / "b", root / "val" / "c")
    with pytest.raises(
        ConfigError, match=r"different class folders \(only in train: b; only in val: c\)$"
    ):
        compose([*TINY_COMMON, "data=imagefolder", f"data.root={root}"])


def test_cli_a_symlink_loop_is_one_line_and_no_record(tmp_path):
    root = _tree(tmp_path / "data")
    _loop(root / "train" / "b")
    job = tmp_path / "job"
    # Before: torchvision walked 2^40 paths, and run.json stayed at "running".
    result = run_cli(*TINY_COMMON, "data=imagefolder", f"data.root={root}", f"hydra.run.dir={job}",
                     timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: data.root: {root}/train/b/l")
    assert f": a symlink loop: it is the folder {root}/train again" in lines[0]
    assert not list(tmp_path.rglob("run.json"))
