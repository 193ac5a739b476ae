"""Detection: the synthetic COCO set, the loader, COCOeval scoring, and RetinaNet on our backbones."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models import create_backbone
from models.detection import GroupFeatures, build_retinanet
from runners.data.coco import CocoDetectionSet, load_coco
from runners.data.synthetic_det import category_id, ensure_synthetic_detection_dataset
from runners.tasks.coco_eval import (
    COCO_METRICS,
    coco_detections,
    score_detections,
    write_detections,
)
from tests.models.darknet.test_darknet_job import SMALL_CFG

SMALL_SET = {"seed": 3, "image_size": 64, "num_classes": 4, "train_images": 12, "val_images": 16}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_detection_dataset(tmp_path_factory.mktemp("det"), **SMALL_SET)


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _pycocotools_stats(gt_file: Path, dt_file: Path) -> list[float]:
    """COCOeval run directly on the two files, as a user re-scoring a run would."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluator = COCOeval(gt, gt.loadRes(str(dt_file)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def _as_record(stats: list[float]) -> dict[str, float]:
    return {n: (math.nan if v == -1 else 100 * v) for n, v in zip(COCO_METRICS, stats, strict=True)}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in COCO_METRICS)


# --- the synthetic set --------------------------------------------------------------------------


def test_synthetic_set_is_valid_coco_with_area_iscrowd_and_gaps_in_category_ids(small_set):
    for split in ("train", "val"):
        gt = _quiet_coco(small_set / "annotations" / f"instances_{split}.json")
        assert sorted(gt.cats) == [category_id(k) for k in range(4)] == [1, 4, 7, 10]
        assert len(gt.imgs) == SMALL_SET[f"{split}_images"]
        for ann in gt.anns.values():
            x, y, w, h = ann["bbox"]
            assert ann["iscrowd"] == 0 and 0 < ann["area"] <= w * h
            assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64
            image = gt.imgs[ann["image_id"]]
            assert (small_set / split / image["file_name"]).is_file()


def test_synthetic_set_has_empty_images_and_all_three_coco_sizes(tmp_path):
    root = ensure_synthetic_detection_dataset(
        tmp_path, seed=0, image_size=128, num_classes=5, train_images=2, val_images=100
    )
    gt = _quiet_coco(root / "annotations" / "instances_val.json")
    empty = [i for i in gt.imgs if not gt.getAnnIds(imgIds=[i])]
    assert 0 < len(empty) < 30
    areas = np.array([a["area"] for a in gt.anns.values()])
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any()
    assert (areas >= 96**2).any()


def test_synthetic_set_is_deterministic_and_seed_dependent(tmp_path, small_set):
    again = ensure_synthetic_detection_dataset(tmp_path / "again", **SMALL_SET)
    assert again.name == small_set.name
    for name in ("annotations/instances_val.json", "val/000003.png"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes()
    other = ensure_synthetic_detection_dataset(tmp_path / "other", **{**SMALL_SET, "seed": 4})
    a = json.loads((small_set / "annotations/instances_val.json").read_text())["annotations"]
    b = json.loads((other / "annotations/instances_val.json").read_text())["annotations"]
    assert a != b


# --- the loader ---------------------------------------------------------------------------------


def _write_coco(root: Path, images: list[tuple[str, int, int]], anns: list[dict]) -> Path:
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for name, w, h in images:
        Image.new("RGB", (w, h), (10, 20, 30)).save(root / "imgs" / name)
    dataset = {
        "images": [
            {"id": i + 1, "file_name": n, "width": w, "height": h}
            for i, (n, w, h) in enumerate(images)
        ],
        "annotations": anns,
        "categories": [{"id": 5, "name": "a"}, {"id": 90, "name": "b"}],
    }
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps(dataset))
    return ann_file


def test_loader_letterboxes_and_boxes_follow_the_image(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 90, "bbox": [20, 10, 40, 30], "area": 1, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10], "area": 1, "iscrowd": 1},
    ]  # fmt: skip
    ann_file = _write_coco(tmp_path, [("a.png", 200, 100), ("b.png", 50, 50)], anns)
    dataset = CocoDetectionSet(tmp_path / "imgs", ann_file, 64, train=False, augment=False)
    image, target = dataset[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert target["scale"] == pytest.approx(64 / 200)
    # The crowd box is left out of training targets; category 90 is the model's class 1.
    assert target["labels"].tolist() == [1]
    torch.testing.assert_close(target["boxes"], torch.tensor([[20, 10, 60, 40]]) * 0.32)
    assert image[:, 40:, :].eq(0).all()  # letterbox padding below the 200x100 image
    _, empty = dataset[1]  # an image without annotations
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_loader_flip_moves_boxes(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 16, 8], "area": 1, "iscrowd": 0}
    ]
    ann_file = _write_coco(tmp_path, [("a.png", 64, 64)], anns)
    dataset = CocoDetectionSet(tmp_path / "imgs", ann_file, 64, train=True, augment=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        seen.add(tuple(dataset[0][1]["boxes"][0].tolist()))
    assert seen == {(0.0, 0.0, 16.0, 8.0), (48.0, 0.0, 64.0, 8.0)}


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level is not an object"),
        ('{"images": [], "annotations": []}', "no list 'categories'"),
        (
            '{"images": [{"id": 1}], "annotations": [], "categories": []}',
            r"images\[0\] has no file_name",
        ),
        (
            '{"images": [], "categories": [], "annotations": '
            '[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2]}]}',
            r"annotations\[0\].bbox must be",
        ),
    ],
)
def test_malformed_coco_json_names_the_file(tmp_path, content, message):
    path = tmp_path / "instances_val.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_coco(path)
    assert str(path) in str(info.value)


# --- scoring ------------------------------------------------------------------------------------


def _perturbed_detections(gt: COCO, rng: np.random.Generator) -> list[dict]:
    """Noisy copies of most ground-truth boxes, some false positives, none for category 10."""
    detections = []
    for ann in gt.anns.values():
        if ann["category_id"] == 10 or rng.random() < 0.2:
            continue
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.1, size=4) * [w, h, w, h]
        detections.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": [float(v) for v in np.array([x, y, w, h]) + jitter],
                "score": float(rng.uniform(0.3, 1.0)),
            }
        )
    for image_id in list(gt.imgs)[:5]:
        detections.append(
            {"image_id": image_id, "category_id": 4, "bbox": [1.0, 2.0, 9.0, 7.0], "score": 0.9}
        )
    return detections


def test_our_ap_equals_pycocotools_on_the_same_files(small_set, tmp_path):
    gt_file = small_set / "annotations" / "instances_val.json"
    gt = _quiet_coco(gt_file)
    assert any(not gt.getAnnIds(imgIds=[i]) for i in gt.imgs)  # images without annotations
    detections = _perturbed_detections(gt, np.random.default_rng(0))
    write_detections(tmp_path, detections, gt_file)
    ours = score_detections(load_coco(gt_file), detections)
    direct = _as_record(_pycocotools_stats(gt_file, tmp_path / "detections.json"))
    assert _same(ours, direct)
    assert 0 < ours["AP50"] < 100
    assert Path((tmp_path / "ground_truth.txt").read_text().strip()) == gt_file.resolve()


def test_empty_detections_score_zero_where_pycocotools_cannot_load_them(small_set):
    gt_file = small_set / "annotations" / "instances_val.json"
    gt = load_coco(gt_file)
    # What pycocotools itself does with an empty result list.
    with pytest.raises(IndexError), contextlib.redirect_stdout(io.StringIO()):
        gt.loadRes([])
    scores = score_detections(gt, [])
    defined = {k: v for k, v in scores.items() if not math.isnan(v)}
    assert defined and all(v == 0 for v in defined.values())


def test_undefined_numbers_are_nan(tmp_path):
    """Only small objects in the ground truth: COCOeval says -1 for medium and large."""
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 5,
            "bbox": [2, 2, 10, 10],
            "area": 100,
            "iscrowd": 0,
        }
    ]
    ann_file = _write_coco(tmp_path, [("a.png", 64, 64)], anns)
    det = [{"image_id": 1, "category_id": 5, "bbox": [2, 2, 10, 10], "score": 0.9}]
    scores = score_detections(load_coco(ann_file), det)
    assert scores["AP"] == pytest.approx(100) and scores["APs"] == pytest.approx(100)
    assert math.isnan(scores["APm"]) and math.isnan(scores["APl"])


def test_coco_detections_map_back_to_original_pixels_and_category_ids():
    outputs = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]),
            "scores": torch.tensor([0.5]),
            "labels": torch.tensor([1]),
        }
    ]
    targets = [{"image_id": 7, "scale": 0.5}]
    (det,) = coco_detections(outputs, targets, category_ids=[5, 90])
    assert det == {"image_id": 7, "category_id": 90, "bbox": [20.0, 40.0, 40.0, 80.0], "score": 0.5}


# --- the detector -------------------------------------------------------------------------------


def test_group_features_returns_groups_2_to_4_at_strides_8_16_32():
    backbone = create_backbone("tinyresnet", num_classes=3, stem_stride=4)
    features = GroupFeatures(backbone, {2: "layer2", 3: "layer3", 4: "layer4"})
    maps = features(torch.zeros(2, 3, 64, 64))
    assert list(maps) == ["2", "3", "4"]
    assert [tuple(m.shape) for m in maps.values()] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]


@pytest.mark.parametrize("name", ["tinyresnet", "resnet18", "darknet"])
def test_retinanet_trains_and_detects_on_a_registered_backbone(name, tmp_path):
    torch.manual_seed(0)
    kwargs = {}
    if name == "darknet":  # a cfg network: groups are layer ranges, C3..C5 their last layers
        (tmp_path / "net.cfg").write_text(SMALL_CFG)
        kwargs = {"cfg": str(tmp_path / "net.cfg")}
    backbone = create_backbone(name, num_classes=2, **kwargs)
    model = build_retinanet(
        backbone, name, num_classes=2, image_size=64, fpn_channels=16,
        anchor_sizes=[8, 16, 32, 64, 128], mean=[0.5] * 3, std=[0.25] * 3,
    )  # fmt: skip
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    losses = model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    sum(losses.values()).backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert sum(g is not None for g in grads) > len(grads) // 2  # the backbone learns
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2 and set(outputs[0]) == {"boxes", "scores", "labels"}
