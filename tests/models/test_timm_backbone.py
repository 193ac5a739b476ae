"""``backbone=timm``: groups from feature_info, placement on each family, errors, the CLIs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from models import create_backbone, group_blocks, group_paths
from models.__main__ import main as models_main
from runners.config import ConfigError
from runners.config.network import build_model
from runners.config.preflight import compose
from runners.config.schema import config_hash, resolved_container
from runners.core.record import load_record
from tests.conftest import TINY

#: family -> (timm name, small kwargs, group paths, blocks per group): built small so every test
#: stays fast on the CPU.
FAMILIES = {
    "resnext": (
        "resnext50_32x4d",
        {"layers": [1, 1, 1, 1]},
        {1: "layer1", 2: "layer2", 3: "layer3", 4: "layer4"},
        (1, 1, 1, 1),
    ),
    "regnet": ("regnetx_002", {}, {1: "s1", 2: "s2", 3: "s3", 4: "s4"}, (1, 1, 4, 7)),
    "efficientnet": (
        "efficientnet_b0",
        {},
        {1: "blocks.1", 2: "blocks.2", 3: "blocks.4", 4: "blocks.6"},
        (2, 2, 6, 5),
    ),
    "mobilenetv3": (
        "mobilenetv3_small_050",
        {},
        {1: "blocks.0", 2: "blocks.1", 3: "blocks.3", 4: "blocks.5"},
        (1, 2, 5, 4),
    ),
    "densenet": (
        "densenet121",
        {"block_config": [1, 1, 1, 1]},
        {
            1: "features.denseblock1",
            2: "features.denseblock2",
            3: "features.denseblock3",
            4: "features.norm5",
        },
        (1, 2, 2, 2),  # groups 2-4 also hold the transition that pools into them
    ),
    "convnext": (
        "convnext_atto",
        {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]},
        {1: "stages.0", 2: "stages.1", 3: "stages.2", 4: "stages.3"},
        (1, 1, 1, 1),
    ),
    "vit": (
        "vit_tiny_patch16_224",
        {"img_size": 32, "depth": 2},
        {3: "blocks.1"},  # every block at stride 16 (the patch): group 3 only
        (2,),
    ),
}
BATCHNORM_FAMILIES = ["resnext", "regnet", "efficientnet", "mobilenetv3", "densenet"]


def _build(family: str, num_classes: int = 5) -> tuple[str, torch.nn.Module]:
    name, kwargs, _, _ = FAMILIES[family]
    torch.manual_seed(0)
    return f"timm:{name}", create_backbone(f"timm:{name}", num_classes=num_classes, **kwargs)


def _overrides(family: str, *more: str) -> list[str]:
    name, kwargs, _, _ = FAMILIES[family]
    extra = [f"+backbone.kwargs.{k}={json.dumps(v)}" for k, v in kwargs.items()]
    return ["backbone=timm", f"backbone.name={name}", "data.image_size=32", *extra, *more]


@pytest.mark.parametrize("family", FAMILIES)
def test_groups_are_feature_info_stages_by_output_stride(family):
    _, _, paths, counts = FAMILIES[family]
    name, model = _build(family)
    assert group_paths(model, name) == paths
    blocks = group_blocks(model, name)
    assert tuple(len(blocks[g]) for g in sorted(blocks)) == counts
    # Each group's map is at output stride 2 ** (g + 1), measured on a real 64 x 64 input.
    if family == "vit":
        return  # tokens, no map
    sides = {}
    for group, path in paths.items():
        model.get_submodule(path).register_forward_hook(
            lambda _m, _i, out, g=group: sides.__setitem__(g, out.shape[-1])
        )
    model.eval()(torch.zeros(1, 3, 64, 64))
    assert sides == {g: 64 // 2 ** (g + 1) for g in paths}


def test_a_group_spans_every_stage_at_its_stride():
    """timm lists EfficientNet's stride-16 stages as ``blocks.4`` only; ``blocks.3`` (stride 16
    too) belongs to group 3, and the stride-2 ``blocks.0`` to no group."""
    name, model = _build("efficientnet")
    blocks = group_blocks(model, name)
    assert blocks[3] == tuple(f"blocks.{s}.{b}" for s in (3, 4) for b in range(3))
    assert not any(b.startswith("blocks.0") for bs in blocks.values() for b in bs)


def _placements(overrides: list[str]) -> tuple[torch.nn.Module, list[str]]:
    """The model ``run.py`` would train, built from the same seed as :func:`_build`."""
    cfg = compose(overrides)
    torch.manual_seed(0)
    return build_model(cfg, num_classes=5)


def test_timm_resnet_is_placed_as_the_curated_resnet():
    """ResNet blocks keep the DropBlock paper's rule (after every BN, on the shortcut)."""
    common = ["data.image_size=64", "regularizer=dropblock"]
    with torch.device("meta"):
        _, curated = _placements(["backbone=resnet18", *common])
        _, generic = _placements(["backbone=timm", "backbone.name=resnet18", *common])
    assert generic == curated
    assert (
        "dropblock:layer3.0.downsample.1" in generic and "dropblock:layer3.1.downsample" in generic
    )


@pytest.mark.parametrize(
    ("family", "placed", "not_placed"),
    [
        # inverted residual: after each conv-fed BN and after the block (SE has no BN)
        (
            "efficientnet",
            ["blocks.3.0.bn1", "blocks.3.0.bn2", "blocks.3.0.bn3", "blocks.3.0", "blocks.6.0"],
            ["blocks.2.0", "blocks.2.0.bn1"],
        ),
        # dense layer: norm2 follows conv1; norm1 follows the concatenation, so not after it
        (
            "densenet",
            ["features.denseblock3.denselayer1.norm2", "features.denseblock3.denselayer1"],
            ["features.denseblock3.denselayer1.norm1", "features.denseblock2.denselayer1"],
        ),
        # RegNet's bottleneck, projection shortcut included; no identity shortcut is added
        (
            "regnet",
            ["s3.b1.conv1.bn", "s3.b1.downsample.bn", "s3.b1", "s4.b7"],
            ["s3.b2.downsample"],
        ),
        ("mobilenetv3", ["blocks.2.0.bn1", "blocks.2.0", "blocks.5.0"], ["blocks.1.0"]),
        ("convnext", ["stages.2.blocks.0", "stages.3.blocks.0"], ["stages.2.downsample"]),
    ],
)
def test_generic_placement_follows_blocks_and_conv_fed_batchnorms(family, placed, not_placed):
    _, placements = _placements(_overrides(family, "regularizer=dropblock"))
    assert {f"dropblock:{p}" for p in placed} <= set(placements)
    assert not {f"dropblock:{p}" for p in not_placed} & set(placements)
    if family == "efficientnet":  # dropout takes DropBlock's positions (one family suffices)
        _, dropout = _placements(_overrides(family, "regularizer=dropout"))
        assert [p.split(":", 1)[1] for p in dropout] == [p.split(":", 1)[1] for p in placements]


@pytest.mark.parametrize("family", [*BATCHNORM_FAMILIES, "convnext", "vit"])
def test_eval_output_is_unchanged_by_the_regularizers(family):
    """DropBlock and dropout are identity in eval; CBN in eval is BN on the running statistics."""
    _, model = _build(family)
    # dropblock_cbn places DropBlock and converts BN: both must leave eval alone
    regularizers = {"vit": ["dropout"], "convnext": ["dropblock"]}.get(family, ["dropblock_cbn"])
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = model.eval()(x)
    for regularizer in regularizers:
        placed, placements = _placements(_overrides(family, f"regularizer={regularizer}"))
        assert placements
        torch.testing.assert_close(placed.eval()(x), expected, msg=regularizer)


def test_cbn_on_a_layernorm_network_names_the_normalisation():
    with pytest.raises(
        ConfigError, match=r"regularizer=cbn on backbone timm:convnext_atto: .*LayerNorm2d"
    ):
        compose(_overrides("convnext", "regularizer=cbn"))
    with pytest.raises(ConfigError, match=r"normalises with LayerNorm \(blocks.0.norm1"):
        compose(_overrides("vit", "regularizer=cbn"))


def test_dropblock_on_token_blocks_is_one_error():
    with pytest.raises(
        ConfigError,
        match=r"regularizer=dropblock on backbone timm:vit_tiny_patch16_224: group 3 has no 2-D "
        r"feature maps .* block blocks.0 outputs a tensor of shape \[1, 5, 192\]",
    ):
        compose(_overrides("vit", "regularizer=dropblock"))


def test_unknown_timm_names_and_sources_are_config_errors():
    with pytest.raises(
        ConfigError, match=r"^backbone.name: timm has no model 'resnet5O'; did you mean 'resnet50'"
    ):
        compose(["backbone=timm", "backbone.name=resnet5O"])
    with pytest.raises(ConfigError, match=r"backbone.name: Missing mandatory value"):
        compose(["backbone=timm"])
    with pytest.raises(
        ConfigError, match=r"backbone.kwargs.pretrained: the harness never downloads"
    ):
        compose(["backbone=timm", "backbone.name=resnet18", "+backbone.kwargs.pretrained=true"])
    with pytest.raises(ConfigError, match=r"backbone.source must be one of registry, timm"):
        compose(["backbone=tinyresnet", "backbone.source=hub"])


def test_models_cli_prints_a_timm_models_groups(capsys):
    assert models_main(["timm:efficientnet_b0", "--input", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "timm:efficientnet_b0" and out["params"] > 4e6 and out["flops"] > 0
    assert out["groups"]["3"] == {
        "path": "blocks.4",
        "blocks": [f"blocks.{s}.{b}" for s in (3, 4) for b in range(3)],
    }
    assert models_main(["timm:resnet5O"]) == 2
    assert "did you mean 'resnet50'" in capsys.readouterr().err
    assert models_main(["--list"]) == 0
    assert "backbone=timm backbone.name=<name>" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("family", "regularizer"),
    [
        ("resnext", "dropblock_cbn"),
        ("regnet", "dropblock_cbn"),
        ("efficientnet", "dropblock_cbn"),
        ("mobilenetv3", "dropblock"),
        ("densenet", "dropblock_cbn"),
        ("convnext", "dropblock"),
        ("vit", "dropout"),
    ],
)
def test_one_tiny_training_job_per_family_through_the_cli(
    family, regularizer, cli_in_process, tmp_path, data_cache
):
    job = tmp_path / "job"
    status = cli_in_process(
        *TINY,
        f"data.cache_dir={data_cache}",
        f"hydra.run.dir={job}",
        "batch=8",
        *_overrides(family, f"regularizer={regularizer}"),
    )
    assert status.returncode == 0, status.stderr[-3000:]
    record = load_record(job)
    assert record.status == "completed"
    assert record.config["backbone"]["source"] == "timm"
    assert record.config["backbone"]["name"] == FAMILIES[family][0]
    kinds = {p.split(":", 1)[0] for p in record.placements}
    assert kinds == set(regularizer.replace("dropblock_cbn", "dropblock cbn").split())


def test_checkpoint_is_loaded_before_placement(tmp_path, cli_in_process, data_cache):
    """Weights of a 1000-class model fine-tune a 5-class run: the classifier is re-initialised,
    every other tensor is the file's; a file of another network is one config error."""
    torch.manual_seed(3)
    source = create_backbone("timm:resnet18", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "r18.safetensors"))
    overrides = [
        "backbone=timm",
        "backbone.name=resnet18",
        "data.image_size=32",
        "regularizer=dropblock",
    ]
    cfg = compose([*overrides, f"backbone.checkpoint={tmp_path / 'r18.safetensors'}"])
    model, placements = build_model(cfg, num_classes=5)
    assert placements  # placed after loading: the wrapped BNs carry the file's statistics
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.layer3[0].bn1[0].running_var, source.layer3[0].bn1.running_var)
    assert model.fc.weight.shape == (5, 512)
    # The file's content is part of the run's identity; an unset checkpoint leaves the hash as
    # it was before the key existed.
    without = compose(overrides)
    assert config_hash(cfg) != config_hash(without)
    before_the_keys = resolved_container(compose(["backbone=tinyresnet"]))
    current = config_hash(before_the_keys)
    del before_the_keys["backbone"]["source"], before_the_keys["backbone"]["checkpoint"]
    assert config_hash(before_the_keys) == current
    other = create_backbone("timm:resnet34", num_classes=5)
    torch.save(other.state_dict(), tmp_path / "r34.pth")
    job = tmp_path / "job"
    status = cli_in_process(
        *TINY,
        f"data.cache_dir={data_cache}",
        f"hydra.run.dir={job}",
        *overrides,
        f"backbone.checkpoint={tmp_path / 'r34.pth'}",
    )
    assert status.returncode == 2
    errors = [line for line in status.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "backbone.checkpoint:" in errors[0] and "unexpected" in errors[0]
    assert not (job / "run.json").exists()
