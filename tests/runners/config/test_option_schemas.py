"""Each task option's and each data option's composed config holds only its own keys.

A group whose options have keys of their own (``task``, ``data``) has one schema per option
(``runners.config.schema.TASK_SCHEMAS``, ``DATA_SCHEMAS``), extended by the option's YAML; struct
mode then refuses another option's key, naming it.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from omegaconf import OmegaConf

from runners.config import ConfigError, config_hash, resolved_container, validate
from runners.config.preflight import compose
from runners.config.rules import DATA_OPTIONS, TASKS
from runners.config.schema import (
    DATA_SCHEMAS,
    TASK_SCHEMAS,
    DataConfig,
    DiskDataConfig,
    TaskConfig,
)
from tests.conftest import ROOT, TINY, TINY_COMMON

#: What each option needs besides its name to compose: its task, a root for data on disk.
TASK_JOBS = {"classify": [], "detect": ["task=detect"]}
DATA_JOBS = {
    "synthetic": [],
    "imagefolder": ["data=imagefolder", "data.root=/nowhere"],
    "synthetic_det": ["task=detect"],
    "coco": ["task=detect", "data=coco", "data.root=/nowhere"],
}
#: Keys of other options that each option must not have.
FOREIGN = {
    "classify": ["fpn_channels", "anchor_sizes", "detections_per_img", "score_thresh"],
    "detect": ["topk", "label_smoothing"],
    "synthetic": ["ann", "train_split", "max_annotation_mb", "root", "train_images"],
    "imagefolder": ["num_classes", "seed", "cache_dir", "train_per_class", "ann"],
    "synthetic_det": ["crop", "train_per_class", "val_per_class", "root"],
    "coco": ["crop", "num_classes", "seed", "cache_dir", "train_images"],
}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def _fields(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def test_every_option_has_a_schema_rules_and_a_job_here():
    assert sorted(TASK_SCHEMAS) == sorted(TASKS) == sorted(TASK_JOBS) == _options("task")
    assert sorted(DATA_SCHEMAS) == sorted(DATA_OPTIONS) == sorted(DATA_JOBS) == _options("data")
    for name, schema in DATA_SCHEMAS.items():
        assert DATA_OPTIONS[name].needs_root == issubclass(schema, DiskDataConfig), name


@pytest.mark.parametrize(
    ("group", "option", "job", "schema"),
    [
        *(("task", o, TASK_JOBS[o], TASK_SCHEMAS[o]) for o in _options("task")),
        *(("data", o, DATA_JOBS[o], DATA_SCHEMAS[o]) for o in _options("data")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_options_config_holds_exactly_its_schemas_keys(make_cfg, group, option, job, schema):
    cfg = make_cfg(*job)
    validate(cfg)  # each option's rules read only the keys it has
    node = cfg[group]
    assert node.name == option
    assert OmegaConf.get_type(node) is schema
    assert list(node) == _fields(schema)
    assert not set(FOREIGN[option]) & set(node), option


def test_the_concrete_keys_of_each_option(make_cfg):
    classify, detect = make_cfg(), make_cfg("task=detect")
    assert "topk" in classify.task and "fpn_channels" not in classify.task
    assert "fpn_channels" in detect.task and "topk" not in detect.task
    assert "train_per_class" in classify.data and "ann" not in classify.data
    assert "ann" in detect.data and "crop" not in detect.data
    assert set(classify.task) & set(detect.task) == {f.name for f in dataclasses.fields(TaskConfig)}
    common = set(classify.data) & set(detect.data)
    assert common == {f.name for f in dataclasses.fields(DataConfig)} | {
        "num_classes",
        "seed",
        "cache_dir",
    }


def test_a_key_shared_by_options_is_declared_once():
    """Keys of several options live in one intermediate schema, not copied into each."""
    declared: dict[str, str] = {}
    for base, schemas in ((TaskConfig, TASK_SCHEMAS), (DataConfig, DATA_SCHEMAS)):
        classes = {c for s in schemas.values() for c in s.__mro__ if issubclass(c, base)}
        for cls in sorted(classes, key=lambda c: c.__name__):
            for key in inspect.get_annotations(cls):
                if key != "name":  # each option's schema sets its own name's default
                    assert key not in declared, f"{key}: {declared.get(key)} and {cls.__name__}"
                    declared[key] = cls.__name__


def test_another_options_key_is_refused_on_the_command_line(cli_in_process, tmp_path, data_cache):
    job = tmp_path / "job"
    result = cli_in_process(
        *TINY, f"data.cache_dir={data_cache}", f"hydra.run.dir={job}", "task.fpn_channels=1"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        "error: task.fpn_channels: no such key in task=classify; "
        "`python run.py --cfg job` lists the keys"
    )
    assert not (job / "run.json").exists()


@pytest.mark.parametrize(
    ("option", "override"),
    [
        ("classify", "task.anchor_sizes=[16,32,64,128,256]"),
        ("classify", "task.score_thresh=0.1"),
        ("detect", "task.topk=[1]"),
        ("detect", "task.label_smoothing=0.1"),
        ("synthetic", "data.ann=annotations"),
        ("synthetic", "data.root=/data"),
        ("synthetic", "data.max_annotation_mb=1"),
        ("imagefolder", "data.train_per_class=6"),
        ("imagefolder", "data.cache_dir=/tmp"),
        ("synthetic_det", "data.crop=pad"),
        ("synthetic_det", "data.val_per_class=3"),
        ("coco", "data.num_classes=3"),
        ("coco", "data.seed=1"),
    ],
)
def test_another_options_key_is_refused_naming_it(option, override):
    group, job = ("task", TASK_JOBS[option]) if option in TASKS else ("data", DATA_JOBS[option])
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as info:
        compose([*TINY_COMMON, *job, override])
    assert str(info.value).startswith(f"{key}: no such key in {group}={option}; ")


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            ["task.name=detect"],
            "task.name must name the task option chosen (task=classify), got 'detect'; "
            "choose another option with task=detect",
        ),
        (
            ["task=detect", "data.name=coco"],
            "data.name must name the data option chosen (data=synthetic_det), got 'coco'; "
            "choose another option with data=coco",
        ),
    ],
)
def test_a_name_that_is_not_the_options_is_refused(job, message):
    with pytest.raises(ConfigError) as info:
        compose([*TINY_COMMON, *job])
    assert str(info.value) == message


def test_a_key_added_with_plus_is_refused_too():
    # Hydra's `+` adds a key even to a struct node; validation names it as a mistyped key.
    with pytest.raises(ConfigError) as info:
        compose([*TINY_COMMON, "+task.fpn_channels=1"])
    assert str(info.value) == (
        "task.fpn_channels: no such key in task=classify; `python run.py --cfg job` lists the keys"
    )


def test_the_annotation_limit_is_outside_the_hash_of_a_detection_config(make_cfg):
    config = resolved_container(make_cfg("task=detect"))
    base = config_hash(config)
    config["data"]["max_annotation_mb"] = 1.0
    assert config_hash(config) == base
    config["data"]["ann"] = "other"
    assert config_hash(config) != base
