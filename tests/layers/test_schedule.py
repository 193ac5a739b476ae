"""DropBlock's schedule: the ramps, the buffer in checkpoints, and the runner driving it."""

from __future__ import annotations

import pytest
import torch

from layers.drop_block import DropBlock2d
from layers.schedule import ramp_factor, set_schedule_step
from runners.config.network import build_model
from runners.job import JobContext, run_job


def test_linear_ramp_spans_the_whole_run():
    assert [ramp_factor("linear", s, 100) for s in (0, 25, 50, 100, 150)] == [
        0.0,
        0.25,
        0.5,
        1.0,
        1.0,
    ]
    assert ramp_factor("none", 0, 100) == 1.0
    assert ramp_factor("linear", 5, 0) == 1.0  # no schedule known: the target rate


def test_darknet_ramp_reaches_full_at_85_percent_and_scales_the_block():
    assert ramp_factor("darknet", 85, 100) == pytest.approx(1.0)
    assert ramp_factor("darknet", 42, 100) == pytest.approx(42 / 85)
    module = DropBlock2d(0.1, 7, schedule="darknet")
    module.set_schedule_step(425, 1000)  # m = 0.5
    p, block = module.current()
    assert p == pytest.approx(0.05) and block == 3  # int(7 * 0.5), as Darknet truncates
    rel = DropBlock2d(0.1, 0.5, size_mode="rel", schedule="darknet")
    rel.set_schedule_step(425, 1000)
    assert rel.current()[1] == pytest.approx(0.25)


def test_schedule_position_survives_a_checkpoint():
    module = DropBlock2d(0.1, 7)
    module.set_schedule_step(30, 120)
    state = module.state_dict()
    assert int(state["schedule_step"]) == 30 and int(state["schedule_total"]) == 120
    restored = DropBlock2d(0.1, 7)
    assert restored.current()[0] == pytest.approx(0.1)  # nothing set: target rate
    restored.load_state_dict(state)
    assert restored.current()[0] == pytest.approx(0.025)


def test_ramp_starts_at_identity():
    module = DropBlock2d(0.5, 3).train()
    module.set_schedule_step(0, 100)
    x = torch.randn(2, 3, 8, 8)
    assert module(x) is x


def test_set_schedule_step_reaches_every_placed_layer(make_cfg):
    model, placements = build_model(make_cfg("regularizer=dropblock"), num_classes=10)
    assert set_schedule_step(model, 7, 10) == len(placements) > 0
    rates = sorted(
        {round(m.current()[0], 9) for m in model.modules() if isinstance(m, DropBlock2d)}
    )
    assert rates == pytest.approx([0.025 * 0.7, 0.1 * 0.7])


def test_runner_advances_the_schedule_per_optimizer_step(make_cfg, tmp_path):
    cfg = make_cfg("regularizer=dropblock", "epochs=2", "batch=20", "subdivisions=2")
    record = run_job(cfg, JobContext(job_dir=tmp_path))
    assert record.status == "completed"
    assert any("layer4.0.downsample" in p for p in record.placements)
