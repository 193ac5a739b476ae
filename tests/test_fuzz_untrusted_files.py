"""Fuzzing the readers of untrusted files: a Darknet cfg, a ``.weights`` file, a COCO json.

Random bytes, and random mutations of a valid file, must either load or raise the reader's own
one-line error (:class:`DarknetCfgError`, :class:`WeightsFileError`, :class:`DataError`), never
anything else, and quickly. What loads must also be usable: a cfg network runs on the meta
device, a validated COCO file is indexed and scored by pycocotools.

200 examples in all; each takes milliseconds (the deadline leaves room for a loaded CI machine).
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.darknet import DarknetCfgError, DarknetNet, parse_cfg
from models.darknet.weights import WeightsFileError, load_weights, save_weights
from runners.data.coco import load_coco
from runners.data.images import DataError
from runners.tasks.coco_eval import score_detections

FUZZ = settings(deadline=timedelta(seconds=2), database=None)

VALID_CFG = """\
[net]
batch=8
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=1
groups=2
activation=mish

[route]
layers=-1,-2
groups=2
group_id=1

[shortcut]
from=-3
activation=linear

[dropout]
probability=0.1
dropblock=1
dropblock_size_abs=3

[avgpool]

[connected]
output=5
batch_normalize=1
activation=linear

[softmax]
"""

VALID_COCO = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 16, "height": 16},
        {"id": 2, "file_name": "b.png"},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 8, 6], "area": 48, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 4, "bbox": [0, 0, 4, 4]},
    ],
    "categories": [{"id": 3, "name": "a"}, {"id": 4, "name": "b", "supercategory": "x"}],
}  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "imgs").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "imgs" / name)
    return folder


# --- mutations ------------------------------------------------------------------------------------
#: Values a mutation writes into a ``key=value`` line.
SPECIAL = ["-1", "0", "1", "2", "nan", "inf", "-inf", "1e400", "", "3.5", "-0", "9" * 40, "a,b",
           "1,,2", "-1,-99", "linear", "leaky"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str), st.sampled_from(SPECIAL), st.text(max_size=6)
)


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with 1-3 line edits (a value replaced, a line dropped, doubled or moved) and
    maybe some raw bytes inserted."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["value", "value", "drop", "double", "move"]))
        if edit == "value" and "=" in lines[at]:
            lines[at] = lines[at].split("=", 1)[0] + "=" + draw(VALUES)
        elif edit == "drop":
            del lines[at]
        elif edit == "double":
            lines.insert(at, lines[at])
        else:
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(at))
        if not lines:
            lines = [""]
    data = "\n".join(lines).encode()
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=4)) + data[at:]
    return data


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut, extended, or with a few bytes overwritten (header included)."""
    edit = draw(st.sampled_from(["cut", "append", "overwrite", "overwrite"]))
    if edit == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if edit == "append":
        return data + draw(st.binary(min_size=1, max_size=9))
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.one_of(st.integers(0, 23), st.integers(0, len(data) - 1)))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "image_id", "category_id", "bbox", "file_name", "name", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)


@st.composite
def mutated_coco(draw: st.DrawFn) -> bytes:
    """``VALID_COCO`` with a random node replaced by random JSON (or deleted), as JSON text,
    sometimes with a byte overwritten."""
    dataset = json.loads(json.dumps(VALID_COCO))
    for _ in range(draw(st.integers(1, 2))):
        node = dataset
        while True:
            keys = list(range(len(node))) if isinstance(node, list) else list(node)
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            if draw(st.integers(0, 4)) == 0:
                del node[key]
            else:
                node[key] = draw(JSON)
            break
    data = json.dumps(dataset).encode()
    if draw(st.integers(0, 4)) == 0:
        data = draw(mutated_bytes(data))
    return data


# --- the readers ----------------------------------------------------------------------------------
def _cfg_loads_or_refuses(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        with torch.device("meta"):
            net = DarknetNet(parse_cfg(path))
            c, h, w = net.input_shape
            net.eval()(torch.empty(1, c, h, w))  # the builder's shapes are torch's
    except DarknetCfgError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        event("refused")
    else:
        event("loaded")


@settings(FUZZ, max_examples=20)
@given(data=st.binary(max_size=300))
def test_cfg_random_bytes(workdir, data):
    _cfg_loads_or_refuses(workdir / "bytes.cfg", data)


@settings(FUZZ, max_examples=50)
@given(data=mutated_text(VALID_CFG))
def test_cfg_mutations(workdir, data):
    _cfg_loads_or_refuses(workdir / "mutated.cfg", data)


@pytest.fixture(scope="module")
def weights(workdir: Path) -> tuple[DarknetNet, bytes]:
    net = DarknetNet(parse_cfg(_write(workdir / "weights.cfg", VALID_CFG.encode())))
    save_weights(net, workdir / "valid.weights")
    return net, (workdir / "valid.weights").read_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_weights_random_bytes_and_mutations(workdir, weights, data):
    net, valid = weights
    content = data.draw(st.one_of(st.binary(max_size=64), mutated_bytes(valid)))
    path = _write(workdir / "fuzz.weights", content)
    try:
        major, minor, revision = load_weights(net, path)
    except WeightsFileError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        event("refused")
    else:
        event("loaded")
        assert len(content) == len(valid) and min(major, minor, revision) >= 0


def _coco_loads_or_refuses(workdir: Path, data: bytes) -> None:
    path = _write(workdir / "instances.json", data)
    try:
        coco = load_coco(path, workdir / "imgs", 10**6)
    except DataError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        event("refused")
        return
    event("loaded")
    # What passed is usable: indexed, and scored by COCOeval against a detection per image.
    cat = sorted(coco.cats)[0] if coco.cats else 0
    dets = [
        {"image_id": i, "category_id": cat, "bbox": [0, 0, 4, 4], "score": 0.5} for i in coco.imgs
    ]
    scores = score_detections(coco, dets if coco.cats else [])
    assert all(math.isnan(v) or 0 <= v <= 100 for v in scores.values())


@settings(FUZZ, max_examples=30)
@given(data=st.binary(max_size=200))
def test_coco_random_bytes(workdir, data):
    _coco_loads_or_refuses(workdir, data)


@settings(FUZZ, max_examples=50)
@given(data=mutated_coco())
def test_coco_mutations(workdir, data):
    _coco_loads_or_refuses(workdir, data)
