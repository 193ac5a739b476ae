"""The Darknet thread's studies (issue 15): ablations/darknet_thread.yaml (GPU recipe) and
ablations/darknet_thread_cpu.yaml compose and validate without a GPU, resolve to the thread's
batch 512 / subdivisions 16 and backbone, and place DropBlock in groups 3 and 4 with CmBN
(batch_normalize=2) where the arm says so (conf/darknet_arm/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from layers.cross_iteration_bn import CrossIterationBatchNorm2d
from layers.drop_block import DropBlock2d
from models import group_paths
from runners.config.network import build_model
from runners.config.preflight import CONF_DIR, compose

ARMS = ("none", "dropblock", "cbn", "dropblock_cbn")
ROOT = Path(__file__).resolve().parents[3]
REFERENCE = Path(
    os.environ.get("DARKNET_CFG_DIR", ROOT.parent / "shared" / "reference" / "darknet-cfg")
)


def _composed(*overrides: str):
    """The job config as run.py composes it, without preflight (cheap)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=["device=cpu", *overrides])


def _sweep_arms(study: str) -> list[str]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(
            config_name="config", overrides=[f"ablation={study}"], return_hydra_config=True
        )
    return str(cfg.hydra.sweeper.params.darknet_arm).split(",")


@pytest.mark.parametrize("arm", ARMS)
def test_the_gpu_recipe_resolves_to_the_threads_configuration(arm):
    cfg = _composed("ablation=darknet_thread", f"darknet_arm={arm}")
    assert (cfg.study, cfg.batch, cfg.subdivisions, cfg.epochs) == ("darknet_thread", 512, 16, 120)
    assert (cfg.backbone.name, cfg.data.image_size, cfg.task.label_smoothing) == (
        "cspresnext50", 256, 0.1,
    )  # fmt: skip
    assert cfg.regularizer.name == arm
    placed = {g: s.p for g, s in cfg.regularizer.groups.items() if s.p > 0}
    assert placed == ({"3": 0.025, "4": 0.1} if "dropblock" in arm else {})
    if "dropblock" in arm:
        assert (cfg.regularizer.rescale, cfg.regularizer.schedule) == ("sample", "darknet")
        assert {s.block_size for g, s in cfg.regularizer.groups.items() if g in "34"} == {7}
    if "cbn" in arm:
        assert cfg.regularizer.cbn_mode == "cmbn"
    assert len(cfg.report.published) == 7 and len(cfg.report.claims) == 3


@pytest.mark.parametrize("study", ["darknet_thread", "darknet_thread_cpu"])
def test_both_studies_sweep_the_four_arms_and_pass_preflight(study):
    assert _sweep_arms(study) == list(ARMS)
    # preflight builds the backbone (cspresnext50 at 256 for the GPU recipe): one arm there
    for arm in ARMS if study.endswith("cpu") else ("dropblock_cbn",):
        cfg = compose([f"ablation={study}", f"darknet_arm={arm}", "device=cpu", "logger=none"])
        assert cfg.regularizer.name == arm


def test_the_cpu_variant_keeps_sixteen_subdivisions_on_the_tiny_net():
    cfg = _composed("ablation=darknet_thread_cpu", "darknet_arm=dropblock_cbn")
    assert (cfg.batch, cfg.subdivisions, cfg.backbone.name, cfg.data.name) == (
        128, 16, "tinyresnet", "synthetic",
    )  # fmt: skip
    assert cfg.regularizer.cbn_mode == "cmbn" and cfg.regularizer.groups["4"].p == 0.1


def _check_placements(model, placements, paths: dict[int, str]) -> None:
    dropblocks = [p.split(":", 1)[1] for p in placements if p.startswith("dropblock:")]
    in_group = {g: [p for p in dropblocks if p.startswith(paths[g] + ".")] for g in paths}
    assert in_group[3] and in_group[4] and not in_group[1] and not in_group[2]
    assert len(in_group[3]) + len(in_group[4]) == len(dropblocks)
    blocks = [m for m in model.modules() if isinstance(m, DropBlock2d)]
    assert {(m.p, m.block_size, m.rescale, m.schedule) for m in blocks} == {
        (0.025, 7, "sample", "darknet"), (0.1, 7, "sample", "darknet"),
    }  # fmt: skip
    bns = [m for m in model.modules() if isinstance(m, CrossIterationBatchNorm2d)]
    assert bns and {m.mode for m in bns} == {"cmbn"}


def test_the_gpu_recipe_places_dropblock_in_groups_3_and_4_and_cmbn_everywhere():
    # image_size only sizes the one image the CBN conversion traces; the placement is by module
    cfg = _composed("ablation=darknet_thread", "darknet_arm=dropblock_cbn", "data.image_size=64")
    model, placements = build_model(cfg, num_classes=10)
    paths = dict(group_paths(model, "cspresnext50"))
    _check_placements(model, placements, paths)


@pytest.mark.skipif(
    not (REFERENCE / "csresnext50.cfg").is_file(), reason=f"no csresnext50.cfg in {REFERENCE}"
)
def test_the_darknet_cfg_override_places_the_same_way():
    """The study's comment: with CSP's csresnext50.cfg, ``backbone=darknet backbone.cfg=...``
    builds the Darknet network and the arms place in its groups 3 and 4 (layers 39-80)."""
    cfg = _composed(
        "ablation=darknet_thread", "darknet_arm=dropblock_cbn", "backbone=darknet",
        f"backbone.cfg={REFERENCE / 'csresnext50.cfg'}", "data.image_size=64",
    )  # fmt: skip
    model, placements = build_model(cfg, num_classes=10)
    layers = {int(p.split("layers.")[1].split(".")[0]) for p in placements if "dropblock" in p}
    assert layers and min(layers) >= 39 and max(layers) <= 80
    assert {m.mode for m in model.modules() if isinstance(m, CrossIterationBatchNorm2d)} == {"cmbn"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("report.published.0.value=high", "report.published[0].value must be a number"),
        ("report.published.2.metric=top3", "report.published[2].metric"),
        ("+report.published.1.sorce=CSP", "report.published[1].sorce: unknown key"),
    ],
)
def test_a_malformed_published_entry_stops_the_job_naming_the_key(override, message):
    from runners.config import ConfigError

    with pytest.raises(ConfigError) as err:
        compose(["ablation=darknet_thread_cpu", override, "device=cpu", "logger=none"])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
