"""``backbone=darknet`` as a job: a cfg written by the test trains (in this process, through
``run_job`` as ``run.py`` calls it), and its record shows where the cfg's DropBlock and CmBN (and
the regularizer's DropBlock) were placed."""

from __future__ import annotations

import pytest

from runners.config import ConfigError, validate
from runners.config.darknet_net import adopt_net_options
from runners.core.record import load_record
from runners.job import JobContext, run_job

#: Groups at 32x32: layer 2 (8x8, stride 4) is group 1, layer 3-5 (4x4) group 2, layers 6-7
#: (2x2) group 3, layer 8 (1x1, stride 32) group 4; layer 0 (stride 1) belongs to no group.
SMALL_CFG = """\
[net]
batch=8
subdivisions=2
width=32
height=32
channels=3
learning_rate=0.1
momentum=0.9

[convolutional]
batch_normalize=2
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=2
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=linear

[shortcut]
from=-2
activation=leaky

[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=mish

[dropout]
probability=0.1
dropblock=1
dropblock_size_abs=2

[convolutional]
batch_normalize=2
filters=32
size=3
stride=2
pad=1
activation=leaky

[avgpool]

[convolutional]
filters=1000
size=1
stride=1
pad=1
activation=linear

[softmax]
groups=1
"""


def test_a_cfg_trains_and_records_its_placements(tmp_path, make_cfg, caplog):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    job = tmp_path / "job"
    overrides = ["backbone=darknet", f"backbone.cfg={cfg}", "regularizer=dropblock"]
    # The overrides as Hydra hands them to run.py: batch and subdivisions are not among them.
    returned = run_job(make_cfg(*overrides), JobContext(job_dir=job, overrides=overrides))
    record = load_record(job)
    assert record.status == "completed" and returned == record
    # The cfg's own layers first (CmBN for batch_normalize=2, DropBlock for [dropout]
    # dropblock=1), then the regularizer's DropBlock after each BN of groups 3 and 4.
    assert record.placements == [
        "cmbn:layers.0.bn", "cmbn:layers.3.bn", "dropblock:layers.7", "cmbn:layers.8.bn",
        "dropblock:layers.6.bn", "dropblock:layers.8.bn",
    ]  # fmt: skip
    # [net] batch and subdivisions became the run's; mini_batch = 8 / 2.
    assert (record.batch, record.subdivisions, record.mini_batch) == (8, 2, 4)
    assert record.config["backbone"]["cfg"] == str(cfg)
    # The [net] keys the harness does not use are reported, once (a warning in the job's log).
    unused = [
        r.getMessage() for r in caplog.records if "keys not used by the harness" in r.getMessage()
    ]
    assert len(unused) == 1 and "learning_rate=0.1" in unused[0]


def test_net_batch_is_adopted_unless_given_on_the_command_line(tmp_path, make_cfg):
    cfg_file = tmp_path / "small.cfg"
    cfg_file.write_text(SMALL_CFG)
    cfg = make_cfg("backbone=darknet", f"backbone.cfg={cfg_file}", "batch=16")
    assert adopt_net_options(cfg, ["backbone=darknet", "batch=16"]) == {"subdivisions": 2}
    assert (cfg.batch, cfg.subdivisions) == (16, 2)
    other = make_cfg("backbone=tinyresnet")
    assert adopt_net_options(other, []) == {} and other.batch == 64
    # A bad key stops the job here, before validate and before a record is written; run.py
    # prints a ConfigError as one line and exits with status 2 (tests/cli/test_cli.py).
    cfg_file.write_text(SMALL_CFG.replace("dropblock_size_abs=2", "dropblock_sise_abs=2"))
    line = SMALL_CFG.splitlines().index("dropblock_size_abs=2") + 1
    with pytest.raises(
        ConfigError, match=rf"^backbone.cfg: {cfg_file}:{line}: \[dropout\]: .*'dropblock_sise_abs'"
    ):
        adopt_net_options(make_cfg("backbone=darknet", f"backbone.cfg={cfg_file}"), [])


def test_validate_requires_a_readable_cfg(tmp_path, make_cfg):
    with pytest.raises(ConfigError, match=r"^backbone.cfg must name a Darknet \.cfg file"):
        validate(make_cfg("backbone=darknet"))
    with pytest.raises(ConfigError, match=r"cannot read the Darknet cfg"):
        validate(make_cfg("backbone=darknet", f"backbone.cfg={tmp_path / 'missing.cfg'}"))
    cfg_file = tmp_path / "small.cfg"
    cfg_file.write_text(SMALL_CFG)
    with pytest.raises(ConfigError, match=r"regularizer.cfg_dropout must be one of keep, remove"):
        validate(
            make_cfg("backbone=darknet", f"backbone.cfg={cfg_file}", "regularizer.cfg_dropout=drop")
        )
    validate(make_cfg("backbone=darknet", f"backbone.cfg={cfg_file}"))
