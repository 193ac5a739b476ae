"""The backbone registry, group maps and regularizer placement."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from models import (
    create_backbone,
    get_spec,
    group_modules,
    group_paths,
    list_backbones,
    register_backbone,
)
from regularizers.placement import apply_regularizer
from tests.conftest import ROOT


def _group_map(model, name):
    """The group modules and paths ``apply_regularizer`` takes, looked up in ``models``."""
    return group_modules(model, name), group_paths(model, name)


def test_registry_lists_and_rejects_unknown_names():
    assert {"tinyresnet", "resnet18", "resnet50"} <= set(list_backbones())
    with pytest.raises(
        ValueError, match=r"unknown backbone 'resnet5'.*known: .*resnet50.*did you mean"
    ):
        get_spec("resnet5")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="registered twice"):

        @register_backbone(groups={1: "a", 2: "b", 3: "c", 4: "d"})
        def tinyresnet(num_classes):  # pragma: no cover - never built
            raise AssertionError


@pytest.mark.parametrize(
    ("name", "size", "group3", "group4"), [("tinyresnet", 32, 8, 4), ("resnet18", 64, 4, 2)]
)
def test_group_map_and_feature_sizes(name, size, group3, group4):
    model = create_backbone(name, num_classes=10).eval()
    groups = group_modules(model, name)
    assert sorted(groups) == [1, 2, 3, 4]
    shapes = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, g=g: shapes.__setitem__(g, out.shape))
        for g, m in groups.items()
    ]
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 10)
    for hook in hooks:
        hook.remove()
    assert shapes[3][-1] == group3 and shapes[4][-1] == group4


def test_dropout_is_placed_after_every_bn_and_on_every_shortcut_of_groups_3_and_4():
    model = create_backbone("resnet50", num_classes=10)
    placed = apply_regularizer(
        model, *_group_map(model, "resnet50"), "dropout", {"3": {"p": 0.025}, "4": {"p": 0.1}}
    )
    # ResNet-50: group 3 has 6 bottlenecks, group 4 has 3; each gets 3 BN positions + 1 shortcut.
    assert len(placed) == (6 + 3) * 4
    assert all(p.startswith(("dropout:layer3.", "dropout:layer4.")) for p in placed)
    assert "dropout:layer3.1.downsample" in placed and "dropout:layer3.0.downsample.1" in placed
    rates = {m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.025, 0.1}
    assert (
        isinstance(model.layer3[1].downsample, nn.Dropout) and model.layer3[1].downsample.p == 0.025
    )


def test_none_and_zero_rates_place_nothing():
    model = create_backbone("tinyresnet", num_classes=10)
    before = str(model)
    assert apply_regularizer(model, *_group_map(model, "tinyresnet"), "none", {}) == []
    assert (
        apply_regularizer(model, *_group_map(model, "tinyresnet"), "dropout", {"3": {"p": 0.0}})
        == []
    )
    assert str(model) == before


def test_models_cli_prints_params_and_flops(capsys):
    out = subprocess.run(
        [sys.executable, "-m", "models", "resnet50", "--input", "224", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    stats = json.loads(out.stdout)
    assert stats["params"] == 25_557_032  # timm resnet50, 1000 classes
    assert stats["weight_params"] == 25_502_912  # conv + fc weights, no BN or biases
    assert 8.0e9 < stats["flops"] < 8.4e9  # 4.1 GMACs, counted as 2 FLOPs each
    # The real command once; an unknown name through the same entry point in this process.
    from models.__main__ import main

    assert main(["resnet5"]) == 2
    assert "unknown backbone 'resnet5'" in capsys.readouterr().err


def test_dropblock_is_placed_like_dropout_with_per_group_settings(make_cfg):
    from layers.drop_block import DropBlock2d
    from runners.config.network import build_model

    cfg = make_cfg(
        "backbone=resnet50", "regularizer=dropblock", "regularizer.groups.4.block_size=5"
    )
    model, placed = build_model(cfg, num_classes=10)
    assert len(placed) == (6 + 3) * 4
    layers = {name: m for name, m in model.named_modules() if isinstance(m, DropBlock2d)}
    assert len(layers) == len(placed)
    assert {(m.p, m.block_size) for n, m in layers.items() if n.startswith("layer3")} == {
        (0.025, 7)
    }
    assert {(m.p, m.block_size) for n, m in layers.items() if n.startswith("layer4")} == {(0.1, 5)}
    assert all(m.schedule == "linear" and m.scope == "channel" for m in layers.values())


def test_darknet_aliases_map_onto_dropblock(make_cfg):
    from layers.drop_block import DropBlock2d
    from runners.config import validate
    from runners.config.network import build_model

    cfg = make_cfg(
        "regularizer=dropblock",
        "regularizer.groups.4.probability=0.2",
        "regularizer.groups.4.dropblock_size_abs=3",
        "regularizer.groups.3.dropblock_size_rel=0.5",
    )
    validate(cfg)
    model, _ = build_model(cfg, num_classes=10)
    g3 = next(
        m for n, m in model.named_modules() if n.startswith("layer3") and isinstance(m, DropBlock2d)
    )
    g4 = next(
        m for n, m in model.named_modules() if n.startswith("layer4") and isinstance(m, DropBlock2d)
    )
    assert (g4.p, g4.block_size, g4.size_mode) == (0.2, 3, "abs")
    assert (g3.p, g3.block_size, g3.size_mode) == (0.025, 0.5, "rel")


def test_regularizer_options_reach_the_layers(make_cfg):
    from layers.cross_iteration_bn import CrossIterationBatchNorm2d
    from layers.drop_block import DropBlock2d
    from runners.config.network import build_model

    cfg = make_cfg(
        "regularizer=dropblock_cbn",
        "regularizer.scope=sample",
        "regularizer.rescale=sample",
        "regularizer.gamma=calibrated",
        "regularizer.schedule=darknet",
        "regularizer.kernel=reference",
        "regularizer.window=3",
        "regularizer.burnin=7",
        "regularizer.cbn_mode=cmbn",
    )
    model, placed = build_model(cfg, num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, DropBlock2d)]
    cbns = [m for m in model.modules() if isinstance(m, CrossIterationBatchNorm2d)]
    assert blocks and cbns
    assert {(b.scope, b.rescale, b.gamma, b.schedule, b.kernel) for b in blocks} == {
        ("sample", "sample", "calibrated", "darknet", "reference")
    }
    assert {(c.window, c.burnin, c.mode) for c in cbns} == {(3, 7, "cmbn")}
    kinds = {entry.split(":")[0] for entry in placed}
    assert kinds == {"dropblock", "cbn"}
    assert len([e for e in placed if e.startswith("cbn:")]) == len(cbns)


@pytest.mark.parametrize(
    ("name", "weights_m", "gflops"),
    # The CSPNet README's figures at 256x256 (conv weights incl. the classifier, 2 x MACs):
    # timm's implementations land within 0.1% on weights and 1.3% on FLOPs (docs/BENCHMARKS.md).
    [("cspresnext50", 20.50, 7.93), ("cspdarknet53", 27.61, 13.07)],
)
def test_csp_backbones_match_the_published_complexity(name, weights_m, gflops):
    from models import measure_complexity

    stats = measure_complexity(create_backbone(name, num_classes=1000), 256)
    assert stats.weight_params / 1e6 == pytest.approx(weights_m, rel=0.002)
    assert stats.flops / 1e9 == pytest.approx(gflops, rel=0.015)


@pytest.mark.parametrize("name", ["cspresnext50", "cspdarknet53"])
def test_csp_groups_are_the_stride_4_to_32_stages(name):
    model = create_backbone(name, num_classes=10).eval()
    sizes = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, g=g: sizes.__setitem__(g, out.shape[-1]))
        for g, m in group_modules(model, name).items()
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert sizes == {1: 16, 2: 8, 3: 4, 4: 2}


@pytest.mark.parametrize("name", ["cspresnext50", "cspdarknet53"])
def test_dropblock_and_cbn_place_themselves_on_csp_backbones(name):
    from layers.cross_iteration_bn import CrossIterationBatchNorm2d
    from layers.drop_block import DropBlock2d

    model = create_backbone(name, num_classes=10)
    groups = get_spec(name).groups
    placed = apply_regularizer(
        model,
        *_group_map(model, name),
        "dropblock_cbn",
        {"3": {"p": 0.025}, "4": {"p": 0.1}},
        input_size=64,
    )
    drop_paths = [p.split(":", 1)[1] for p in placed if p.startswith("dropblock:")]
    assert drop_paths and all(p.startswith((groups[3] + ".", groups[4] + ".")) for p in drop_paths)
    assert len(drop_paths) == sum(isinstance(m, DropBlock2d) for m in model.modules())
    assert sum(isinstance(m, CrossIterationBatchNorm2d) for m in model.modules()) == len(
        [p for p in placed if p.startswith("cbn:")]
    )
    assert not any(
        isinstance(m, nn.BatchNorm2d) and not isinstance(m, CrossIterationBatchNorm2d)
        for m in model.modules()
    )


@pytest.mark.parametrize("name", ["tinyresnet", "cspdarknet53"])
def test_cbn_conversion_keeps_the_eval_function(name):
    # Eval-mode CBN is running-statistics BN, and timm's fused activations are kept: the
    # converted network computes exactly what the original did.
    from layers.cbn_convert import convert_to_cbn

    torch.manual_seed(0)
    model = create_backbone(name, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        convert_to_cbn(model, window=2, example_input=x[:1])
        after = model.eval()(x)
    torch.testing.assert_close(after, before)
