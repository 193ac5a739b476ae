"""``task=detect`` through the real CLI: records with COCOeval's twelve numbers, W&B, re-scoring."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from reports.wandb_offline import find_offline_runs, read_offline_run
from runners.core.record import load_record
from runners.tasks.coco_eval import COCO_METRICS
from tests.conftest import run_cli

TINY_DETECT = [
    "task=detect", "epochs=1", "batch=4", "data.train_images=8", "data.val_images=6",
    "data.image_size=64", "device=cpu",
]  # fmt: skip


def _rescore(job_dir: Path) -> list[float]:
    """What a user with pycocotools alone gets from the job directory's two files."""
    gt_file = (job_dir / "ground_truth.txt").read_text().strip()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        evaluator = COCOeval(gt, gt.loadRes(str(job_dir / "detections.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_detection_multirun_records_twelve_metrics_and_rescorable_detections(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    result = run_cli(
        # A low score threshold so that even a one-epoch detector leaves detections to score.
        "-m", *TINY_DETECT, "regularizer=none,dropblock", "task.score_thresh=0.001",
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = {
        load_record(p).config["regularizer"]["name"]: load_record(p)
        for p in sweep.rglob("run.json")
    }
    assert set(records) == {"none", "dropblock"}
    for name, record in records.items():
        assert record.status == "completed"
        assert list(record.final) == list(COCO_METRICS)
        assert list(record.epochs[-1].metrics) == list(COCO_METRICS)
        job_dir = Path(record.job_dir)
        stats = _rescore(job_dir)
        for metric, value in zip(COCO_METRICS, stats, strict=True):
            ours = record.final[metric]
            assert (math.isnan(ours) and value == -1) or ours == 100 * value, metric
        assert record.flops and record.params
        if name == "dropblock":  # the regularizer sits in the detector's backbone
            assert any(p.startswith("dropblock:layer3") for p in record.placements)
            assert any(p.startswith("dropblock:layer4") for p in record.placements)
        else:
            assert record.placements == []
    assert "AP" in (sweep / "RESULTS.md").read_text()
    runs = [read_offline_run(p) for p in find_offline_runs(sweep)]
    assert len(runs) == 2
    for run in runs:
        assert {f"final_{m}" for m in COCO_METRICS} <= set(run.summary)
        assert run.exit_code == 0


def test_detect_rejects_classification_data_with_one_line(tmp_path):
    result = run_cli("task=detect", "data=synthetic", "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: data=synthetic does not fit task=detect; use one of: synthetic_det, coco"
    ]
    assert not (tmp_path / "run.json").exists()
