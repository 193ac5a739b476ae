"""Hostile COCO annotation files: one line naming the file and the entry, before any record."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from runners.config import ConfigError
from runners.config.preflight import compose
from runners.data import coco_validate
from runners.data.coco import load_coco
from runners.data.coco_validate import validate_coco_file, validated_coco
from runners.data.images import DataError

#: A valid two-image set; every case below breaks one thing in a copy of it.
VALID = {
    "info": {"description": "kept out of the clean copy"},
    "images": [
        {"id": 1, "file_name": "a.png", "width": 16, "height": 16},
        {"id": 2, "file_name": "sub/b.png"},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 9, "bbox": [0.5, 0, 8, 8], "segmentation": [[1]]},
    ],
    "categories": [{"id": 7, "name": "cat", "supercategory": "animal"}, {"id": 9}],
}

DETECT = ["task=detect", "data=coco", "data.train_split=train", "data.val_split=val",
          "data.image_size=64", "device=cpu", "logger=none", "epochs=1", "batch=2"]  # fmt: skip


def _images(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "sub/b.png"):
        Image.new("RGB", (16, 16), (10, 20, 30)).save(folder / name)
    return folder


def _coco_root(root: Path, train: dict | None = None, val: dict | None = None) -> Path:
    """``root/{train,val}/`` images and ``root/annotations/instances_{train,val}.json``."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, dataset in (("train", train), ("val", val)):
        _images(root / split)
        text = json.dumps(VALID if dataset is None else dataset)
        (root / "annotations" / f"instances_{split}.json").write_text(text)
    return root


def _set(dataset: dict, path: str, value: object) -> dict:
    """A copy of ``dataset`` with ``path`` (``annotations.0.bbox``) set; ``...`` deletes it."""
    changed = copy.deepcopy(dataset)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return changed


def _check(tmp_path: Path, content: bytes | str | dict, max_bytes: int | None = None) -> dict:
    folder = _images(tmp_path / "imgs")
    path = tmp_path / "instances.json"
    if isinstance(content, dict):
        content = json.dumps(content)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return validate_coco_file(path, folder, max_bytes)


def test_a_valid_file_gives_a_clean_copy_with_what_cocoeval_needs(tmp_path):
    clean = _check(tmp_path, VALID)
    assert set(clean) == {"images", "annotations", "categories"}  # info left out
    second = clean["annotations"][1]
    # area (w x h) and iscrowd filled in, since COCOeval reads both; segmentation left out.
    assert second == {"id": 2, "image_id": 2, "category_id": 9, "bbox": [0.5, 0.0, 8.0, 8.0],
                      "area": 64.0, "iscrowd": 0}  # fmt: skip
    assert clean["categories"][1] == {"id": 9, "name": "9"}
    assert clean["images"][0] == VALID["images"][0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", r"not valid JSON \(Expecting property name"),
        (b'{"images": "caf\xe9"}', r"not UTF-8 text \(byte 0xe9 at offset 15\)"),
        (b"[" * 100_000 + b"]" * 100_000, r"not valid JSON \(nested too deeply\)"),
        (b'{"images": [{"id": ' + b"9" * 5000 + b"}]}", r"not valid JSON \(Exceeds the limit"),
        (b"[]", r"not a COCO instances file \(top level is not an object\)"),
        (
            b'{"images": [], "annotations": []}',
            r"not a COCO instances file \(no list 'categories'\)",
        ),
    ],
    ids=["invalid-json", "latin-1", "deep-nesting", "huge-int", "list", "no-categories"],
)
def test_unreadable_json_names_the_file(tmp_path, content, message):
    with pytest.raises(DataError, match=rf"^{tmp_path}/instances\.json: {message}"):
        _check(tmp_path, content)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("annotations.0.category_id", 8, r"annotations\[0\]\.category_id 8 is not in categories \(ids: 7, 9\)"),
        ("annotations.1.image_id", 3, r"annotations\[1\]\.image_id 3 is not in images"),
        ("annotations.0.bbox", [1, 2, 3], r"annotations\[0\]\.bbox must be \[x, y, w, h\]: 4 finite numbers"),
        ("annotations.0.bbox", [1, 2, 3, "4"], r"annotations\[0\]\.bbox must be .*got \[1, 2, 3, '4'\]"),
        ("annotations.0.bbox", [1, 2, float("nan"), 4], r"annotations\[0\]\.bbox must be .*got \[1, 2, nan, 4\]"),
        ("annotations.0.bbox", [1, 2, float("inf"), 4], r"annotations\[0\]\.bbox must be"),
        ("annotations.0.bbox", [1, 2, 1e300, 4], r"annotations\[0\]\.bbox must be .*within ±1e9"),
        ("annotations.0.bbox", [1, 2, -3, 4], r"annotations\[0\]\.bbox must be .*w and h >= 0"),
        ("annotations.0.bbox", [True, 2, 3, 4], r"annotations\[0\]\.bbox must be"),
        ("annotations.0.bbox", [[[[1]]], 2, 3, 4], r"annotations\[0\]\.bbox must be"),
        ("annotations.0.bbox", ..., r"annotations\[0\] has no bbox"),
        ("annotations.0.area", -1, r"annotations\[0\]\.area must be a finite number >= 0, got -1"),
        ("annotations.0.iscrowd", 2, r"annotations\[0\]\.iscrowd must be 0 or 1, got 2"),
        ("annotations.0.id", 0, r"annotations\[0\]\.id must be an integer in \[1, 2\^63\), got 0"),
        ("annotations.1.id", 1, r"annotations\[1\]\.id 1 repeats annotations\[0\]"),
        ("images.1.id", "2", r"images\[1\]\.id must be an integer in \[0, 2\^63\), got '2'"),
        ("images.1.id", 2.0, r"images\[1\]\.id must be an integer .*got 2\.0"),
        ("images.1.id", True, r"images\[1\]\.id must be an integer .*got True"),
        ("images.1.id", 2**63, r"images\[1\]\.id must be an integer in \[0, 2\^63\)"),
        ("images.1.id", 1, r"images\[1\]\.id 1 repeats images\[0\]"),
        ("images.1", "b.png", r"images\[1\] must be an object, got 'b.png'"),
        ("images.0.width", -16, r"images\[0\]\.width must be a positive integer, got -16"),
        ("categories.0.id", None, r"categories\[0\]\.id must be an integer .*got None"),
        ("categories.0.name", ["cat"], r"categories\[0\]\.name must be text, got \['cat'\]"),
        ("categories.0.name", "\ud800", r"categories\[0\]\.name must be text"),
    ],
)  # fmt: skip
def test_bad_entries_name_the_entry_and_the_field(tmp_path, path, value, message):
    with pytest.raises(DataError, match=rf"^{tmp_path}/instances\.json: {message}") as info:
        _check(tmp_path, _set(VALID, path, value))
    assert "\n" not in str(info.value)


def test_image_ids_of_mixed_types_are_refused(tmp_path):
    # The harness sorts image ids and writes them back as integers: a string among integers
    # would fail deep in the loader (TypeError) or be scored against nothing.
    dataset = _set(_set(VALID, "images.1.id", "b"), "annotations.1.image_id", "b")
    with pytest.raises(DataError, match=r"images\[1\]\.id must be an integer .*got 'b'"):
        _check(tmp_path, dataset)


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        ("/etc/passwd", r"'/etc/passwd' must be a path inside the image folder .*imgs \(relative, without '\.\.'\)"),
        ("../instances.json", r"'\.\./instances\.json' must be a path inside the image folder"),
        ("sub/../../instances.json", r"'sub/\.\./\.\./instances\.json' must be a path inside"),
        ("missing.png", r"'missing\.png': no such file in .*imgs"),
        ("", r"must be a non-empty path, got ''"),
        ("a.png\x00.jpg", r"must be a non-empty path"),
        (7, r"must be a non-empty path, got 7"),
    ],
)  # fmt: skip
def test_file_names_must_stay_inside_the_image_folder(tmp_path, file_name, message):
    with pytest.raises(DataError, match=rf"images\[0\]\.file_name {message}"):
        _check(tmp_path, _set(VALID, "images.0.file_name", file_name))


def test_a_symlink_that_leads_out_of_the_image_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    folder = _images(tmp_path / "imgs")
    (folder / "link.png").symlink_to(secret)
    (folder / "outside").symlink_to(tmp_path)
    (folder / "inside.png").symlink_to(folder / "a.png")  # a link within the folder is fine
    for name in ("link.png", "outside/secret.png"):
        with pytest.raises(DataError, match=rf"'{name}' leads out of the image folder .*{secret}"):
            _check(tmp_path, _set(VALID, "images.0.file_name", name))
    assert _check(tmp_path, _set(VALID, "images.0.file_name", "inside.png"))["images"][0]


def test_the_size_limit_is_checked_before_the_file_is_read(tmp_path, monkeypatch):
    size = len(json.dumps(VALID))
    with pytest.raises(DataError, match=r"MB is over the limit of .* MB .*data\.max_annotation_mb"):
        _check(tmp_path, VALID, max_bytes=size - 1)
    assert _check(tmp_path, VALID, max_bytes=size)
    # A sparse file of 1 GB: refused from its stat, in far less time than reading it takes.
    path = tmp_path / "instances.json"
    with open(path, "wb") as handle:
        handle.truncate(10**9)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"1,000\.0 MB is over the limit of 2 MB"):
        validate_coco_file(path, tmp_path, 2_000_000)
    assert time.perf_counter() - start < 0.5


def test_the_preflight_parses_a_file_once_for_the_loader(tmp_path, monkeypatch):
    folder = _images(tmp_path / "imgs")
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(VALID))
    calls = []
    real = coco_validate.validate_coco_file
    monkeypatch.setattr(coco_validate, "validate_coco_file", lambda *a: calls.append(a) or real(*a))
    first = validated_coco(path, folder, None, keep=True)
    assert validated_coco(path, folder, None) is first and len(calls) == 1
    assert validated_coco(path, folder, None) is not first and len(calls) == 2  # taken out
    validated_coco(path, folder, None, keep=True)
    path.write_text(json.dumps(_set(VALID, "annotations.0.category_id", 8)))
    os.utime(path, ns=(1, 1))  # changed since: validated again
    with pytest.raises(DataError, match="category_id 8"):
        validated_coco(path, folder, None)


def test_scoring_checks_names_without_an_image_folder(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(VALID))
    assert sorted(load_coco(path).imgs) == [1, 2]  # images are not looked for
    path.write_text(json.dumps(_set(VALID, "images.0.file_name", "../x.png")))
    with pytest.raises(DataError, match=r"'\.\./x\.png' must be a path inside the image folder \("):
        load_coco(path)


def test_preflight_validates_both_splits(tmp_path):
    root = _coco_root(tmp_path / "coco")
    compose([*DETECT, f"data.root={root}"])  # valid: no error
    bad = _set(VALID, "annotations.1.category_id", 5)
    _coco_root(root, val=bad)
    val_file = root / "annotations" / "instances_val.json"
    with pytest.raises(ConfigError, match=rf"^{val_file}: annotations\[1\]\.category_id 5 is"):
        compose([*DETECT, f"data.root={root}"])
    _coco_root(root, val=_set(VALID, "categories.1.id", 5) | {"annotations": []})
    with pytest.raises(
        ConfigError, match=r"instances_train\.json and .* list different categories"
    ):
        compose([*DETECT, f"data.root={root}"])
    _coco_root(root)
    with pytest.raises(ConfigError, match=r"data\.max_annotation_mb must be > 0 and finite"):
        compose([*DETECT, f"data.root={root}", "data.max_annotation_mb=nan"])
    with pytest.raises(ConfigError, match=r"over the limit of 0 MB"):
        compose([*DETECT, f"data.root={root}", "data.max_annotation_mb=0.0001"])


def test_cli_refuses_an_escaping_file_name_with_one_line_and_no_record(cli_in_process, tmp_path):
    root = _coco_root(tmp_path / "coco", train=_set(VALID, "images.1.file_name", "../../x.png"))
    job = tmp_path / "job"
    result = cli_in_process(*DETECT, f"data.root={root}", f"hydra.run.dir={job}")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    train_file = root / "annotations" / "instances_train.json"
    assert lines == [
        f"error: {train_file}: images[1].file_name '../../x.png' must be a path inside the "
        f"image folder {root / 'train'} (relative, without '..')"
    ]
    assert not list(tmp_path.rglob("run.json"))
