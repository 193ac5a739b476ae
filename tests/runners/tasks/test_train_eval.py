"""Scores on training images (``task.train_eval_samples``): the subset, its loader, the record's
``train_eval_*`` metrics, and the generalization gap the reports derive from them."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch

from reports.collect import generalization_gap
from runners.core.errors import ConfigError
from runners.core.record import load_record
from runners.data.loaders import build_data, train_eval_subset
from runners.job import JobContext, run_job


def test_subset_is_evenly_spaced_and_bounded():
    assert train_eval_subset(10, 4) == [0, 3, 6, 9]
    assert train_eval_subset(5, 5) == train_eval_subset(5, 50) == [0, 1, 2, 3, 4]
    assert train_eval_subset(5, 0) == train_eval_subset(0, 3) == []
    subset = train_eval_subset(10_000, 777)
    assert len(subset) == 777 and subset == sorted(set(subset))


def test_loader_keeps_class_proportions_and_has_no_augmentation(make_cfg):
    cfg = make_cfg("data.augment=true")  # 10 classes x 6 training images
    data = build_data(cfg.data, batch=8, seed=0, train_eval_samples=20)
    assert len(data.train_eval.dataset) == 20
    labels = [int(y) for _, ys in data.train_eval for y in ys]
    assert Counter(labels) == dict.fromkeys(range(10), 2)
    first = torch.cat([x for x, _ in data.train_eval])
    second = torch.cat([x for x, _ in data.train_eval])
    assert torch.equal(first, second), "augmentation would change the images between passes"
    assert build_data(cfg.data, batch=8, seed=0).train_eval is None


def test_training_scores_equal_validation_when_val_is_the_training_set(make_cfg, tmp_path):
    """The same images as val/ and train/: the record's train_eval_* equal its val metrics, so
    they are the model in eval mode without augmentation, on every training image."""
    generated = build_data(make_cfg().data, batch=8, seed=0).root
    root = tmp_path / "same"
    shutil.copytree(generated / "train", root / "train")
    shutil.copytree(generated / "train", root / "val")
    cfg = make_cfg(
        "data=imagefolder", f"data.root={root}", "data.image_size=32", "epochs=2",
        "task.train_eval_samples=1000",
    )  # fmt: skip
    record = run_job(cfg, JobContext(job_dir=tmp_path / "job"))
    final = load_record(tmp_path / "job").final
    assert record.status == "completed"
    for name in ("loss", "top1", "top5"):
        assert final[f"train_eval_{name}"] == pytest.approx(final[name], abs=1e-6)
    assert generalization_gap(final) == pytest.approx({"gap_top1": 0.0, "gap_loss": 0.0}, abs=1e-6)
    assert all("train_eval_top1" in e.metrics for e in record.epochs)


def test_zero_samples_records_no_training_scores(make_cfg, tmp_path):
    record = run_job(make_cfg("task.train_eval_samples=0"), JobContext(job_dir=tmp_path))
    assert set(record.final) == {"loss", "top1", "top5"}


def test_negative_samples_is_refused_naming_the_key(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"task\.train_eval_samples"):
        run_job(make_cfg("task.train_eval_samples=-1"), JobContext(job_dir=tmp_path))


def test_gap_is_signed_so_that_overfitting_is_positive():
    final = {"top1": 60.0, "loss": 1.5, "train_eval_top1": 75.0, "train_eval_loss": 0.5}
    assert generalization_gap(final) == {"gap_top1": 15.0, "gap_loss": 1.0}
    assert generalization_gap({"top1": 60.0}) == {"gap_top1": None, "gap_loss": None}
    assert generalization_gap({"top1": "60", "train_eval_top1": 70.0})["gap_top1"] is None
