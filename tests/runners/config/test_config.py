"""Config composition and the errors that must stop a job before training."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from runners.config import ConfigError, config_hash, resolved_container, validate
from tests.conftest import ROOT


def test_default_config_composes_and_validates(make_cfg):
    cfg = make_cfg(tiny=False)
    validate(cfg)
    assert cfg.backbone.name == "tinyresnet"
    assert cfg.regularizer.name == "none"
    assert cfg.logger.name == "wandb" and cfg.logger.mode.value == "offline"
    assert cfg.batch == 64 and cfg.subdivisions == 1
    assert cfg.task.topk == [1, 5]


def test_every_group_option_composes(make_cfg):
    for override in [
        "regularizer=dropout",
        "regularizer=dropblock",
        "backbone=resnet18",
        "backbone=resnet50",
        "backbone=cspresnext50",
        "backbone=cspdarknet53",
        "optim=imagenet",
        "logger=none",
        "data=imagefolder",
    ]:
        extra = ["data.root=/nowhere"] if override == "data=imagefolder" else []
        cfg = make_cfg(override, *extra)
        validate(cfg)


def test_regularizer_groups_are_per_group_and_overridable(make_cfg):
    cfg = make_cfg(
        "regularizer=dropout", "regularizer.groups.3.p=0.05", "regularizer.groups.4.block_size=5"
    )
    assert cfg.regularizer.groups["3"].p == 0.05
    assert cfg.regularizer.groups["4"].p == 0.1
    assert cfg.regularizer.groups["4"].block_size == 5


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["batch=64", "subdivisions=5"], "batch must be divisible by subdivisions"),
        (["batch=0"], "batch must be >= 1"),
        (["subdivisions=0"], "subdivisions must be >= 1"),
        (["epochs=0"], "epochs must be >= 1"),
        (
            ["regularizer=dropout", "regularizer.groups.4.p=1.0"],
            "regularizer.groups.4.p must be in [0.0, 1.0)",
        ),
        (["regularizer=dropout", "regularizer.groups.3.p=-0.1"], "regularizer.groups.3.p"),
        (
            ["regularizer=dropout", "regularizer.groups.4.block_size=0"],
            "regularizer.groups.4.block_size",
        ),
        (["backbone.name=resnet5O"], "backbone.name must be one of"),
        (["regularizer.name=dropblok"], "regularizer.name must be one of"),
        (["optim.base_lr=0"], "optim.base_lr must be > 0"),
        (["optim.momentum=1.5"], "optim.momentum"),
        (["data=imagefolder"], "data.root"),
        (["data.num_classes=11"], "data.num_classes must be in [2, 10] for synthetic data, got 11"),
        (["data.val_per_class=0"], "data.val_per_class must be >= 1, got 0"),
        (
            ["task=detect", "data=synthetic_det", "data.num_classes=0"],
            "data.num_classes must be in [1, 10] for synthetic_det, got 0",
        ),
        (["task=detect", "data=synthetic_det", "data.train_images=0"], "data.train_images must be"),
    ],
)
def test_validation_names_the_key(make_cfg, overrides, key):
    with pytest.raises(ConfigError) as info:
        cfg = make_cfg(*overrides)
        validate(cfg)
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_group_outside_1_to_4_is_rejected(make_cfg):
    # A YAML option could carry such a key; the command line cannot add one past the schema.
    cfg = make_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg = OmegaConf.merge(cfg, OmegaConf.create({"regularizer": {"groups": {"7": {"p": 0.1}}}}))
    with pytest.raises(ConfigError, match=r"regularizer.groups keys must be groups 1..4, got '7'"):
        validate(cfg)


def test_every_group_can_be_set_from_the_command_line(make_cfg):
    cfg = make_cfg("regularizer=dropout", "regularizer.groups.2.p=0.01")
    assert {k: v.p for k, v in cfg.regularizer.groups.items()} == {
        "1": 0.0,
        "2": 0.01,
        "3": 0.025,
        "4": 0.1,
    }


def test_close_names_are_suggested(make_cfg):
    with pytest.raises(ConfigError, match="did you mean 'resnet50'"):
        validate(make_cfg("backbone.name=resnet5O"))


def test_wrong_type_fails_at_composition_naming_the_key(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("batch=abc")
    assert "batch" in str(info.value.__cause__ or info.value)
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        make_cfg("device=gpu")
    assert "gpu" in str(info.value.__cause__ or info.value)


def test_unknown_group_option_lists_the_options(make_cfg):
    with pytest.raises(Exception) as info:
        make_cfg("regularizer=dropblok")
    message = str(info.value)
    assert "regularizer/dropblok" in message and "dropout" in message


def test_config_hash_ignores_tracking_but_not_training(make_cfg):
    base = config_hash(make_cfg())
    assert config_hash(make_cfg("logger=wandb")) == base
    assert config_hash(make_cfg("study=other")) == base
    assert config_hash(make_cfg("seed=1")) != base
    assert config_hash(make_cfg("regularizer=dropout")) != base
    assert "hydra" not in resolved_container(make_cfg())


def test_cli_config_error_is_one_line_and_trains_nothing(cli_in_process, tmp_path):
    result = cli_in_process(
        "batch=64", "subdivisions=3", "logger=none", f"hydra.run.dir={tmp_path / 'job'}"
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines == [
        "error: batch must be divisible by subdivisions (mini_batch = batch / subdivisions), got batch=64 subdivisions=3"
    ]
    assert not (tmp_path / "job" / "run.json").exists()


def test_cli_type_error_names_the_key(cli_in_process, tmp_path):
    result = cli_in_process(
        "regularizer.groups.4.p=high", "regularizer=dropout", f"hydra.run.dir={tmp_path / 'job'}"
    )
    assert result.returncode != 0
    assert "regularizer.groups.4.p" in result.stderr
    assert not (tmp_path / "job" / "run.json").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["regularizer=dropblock", "regularizer.groups.4.block_size=2.5"],
            "regularizer.groups.4.block_size must be an integer >= 1",
        ),
        (
            ["regularizer=dropblock", "regularizer.groups.4.dropblock_size_abs=0"],
            "regularizer.groups.4.dropblock_size_abs must be an integer >= 1",
        ),
        (
            ["regularizer=dropblock", "regularizer.groups.3.dropblock_size_rel=1.5"],
            "regularizer.groups.3.dropblock_size_rel must be a fraction in (0, 1]",
        ),
        (
            ["regularizer=dropblock", "regularizer.groups.4.probability=1.2"],
            "regularizer.groups.4.probability must be in [0.0, 1.0)",
        ),
        (["regularizer=dropblock", "regularizer.scope=batch"], "regularizer.scope must be one of"),
        (
            ["regularizer=dropblock", "regularizer.schedule=cosine"],
            "regularizer.schedule must be one of",
        ),
    ],
)
def test_dropblock_settings_are_validated(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as info:
        validate(make_cfg(*overrides))
    assert message in str(info.value)


def test_config_hash_follows_a_darknet_cfg_files_content(tmp_path):
    cfg_file = tmp_path / "net.cfg"
    cfg_file.write_text("[net]\nwidth=32\n")
    config = {"backbone": {"name": "darknet", "cfg": str(cfg_file)}, "batch": 8}
    before = config_hash(config)
    assert config_hash(config) == before
    cfg_file.write_text("[net]\nwidth=64\n")
    assert config_hash(config) != before


def test_validation_registries_match_the_options_in_conf():
    """Every task, data and regularizer option in conf/ has its entry in the validation
    registries (the regularizers' is ``regularizers.registry``), and every data option the
    registries name exists."""
    from regularizers import registry
    from runners.config.rules import DATA_OPTIONS, TASKS

    conf = ROOT / "conf"
    assert set(TASKS) == {p.stem for p in (conf / "task").glob("*.yaml")}
    assert set(DATA_OPTIONS) == {p.stem for p in (conf / "data").glob("*.yaml")}
    assert set(registry.names()) == {p.stem for p in (conf / "regularizer").glob("*.yaml")}
    assert {d for option in TASKS.values() for d in option.data} == set(DATA_OPTIONS)


def test_the_package_validate_is_the_rules_function():
    import runners.config
    import runners.config.rules

    assert runners.config.validate is runners.config.rules.validate
