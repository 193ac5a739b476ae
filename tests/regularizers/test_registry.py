"""The regularizer registry: one file plus one config file make a regularizer.

The proof: a toy regularizer ("noise", Gaussian noise scaled by the group's p in training,
identity in eval, with a key of its own) is defined and registered here, given a config file in
a temporary config directory, and trained through the real command-line entry point.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.core.config_store import ConfigStore
from torch import nn

from models import create_backbone, group_modules, group_paths
from regularizers import registry
from regularizers.base import RegularizerConfig, own_keys
from regularizers.placement import apply_regularizer, in_groups
from runners.config import ConfigError, register_configs, validate
from runners.config.preflight import compose
from runners.core.checks import positive
from runners.core.record import load_record
from tests.conftest import ROOT, TINY

BUILT_INS = ("none", "dropout", "dropblock", "cbn", "dropblock_cbn")


# -- the toy: what regularizers/noise.py would hold ------------------------------------------------


@dataclass
class NoiseConfig(RegularizerConfig):
    """Gaussian noise's own key."""

    #: Standard deviation of the noise, times the group's p.
    sigma: float = 1.0


class GaussianNoise(nn.Module):
    """``x + N(0, (p * sigma)^2)`` in training; the identity in eval."""

    def __init__(self, p: float, sigma: float) -> None:
        super().__init__()
        self.p, self.sigma = p, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.p * self.sigma if self.training else x


def check_sigma(reg) -> None:
    positive("regularizer.sigma", reg.sigma)


NOISE = registry.Regularizer(
    name="noise",
    schema=NoiseConfig,
    label="Gaussian noise",
    rules=(check_sigma,),
    steps=(in_groups("noise", lambda group, options: GaussianNoise(group["p"], options["sigma"])),),
)

#: What conf/regularizer/noise.yaml would hold.
NOISE_YAML = """\
defaults:
  - /base_regularizer_noise@_here_
  - _self_

name: noise
sigma: 0.5
groups:
  "3": {p: 0.05}
  "4": {p: 0.2}
"""


@pytest.fixture
def noise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The toy registered (registry and ConfigStore restored afterwards); returns a config
    directory holding ``regularizer/noise.yaml``, for ``hydra.searchpath``."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    store = ConfigStore.instance()
    monkeypatch.setattr(store, "repo", dict(store.repo))
    registry.register(NOISE)
    register_configs()  # stores base_regularizer_<name> for every registered regularizer
    conf = tmp_path / "conf"
    (conf / "regularizer").mkdir(parents=True)
    (conf / "regularizer" / "noise.yaml").write_text(NOISE_YAML)
    return conf


def test_a_regularizer_registered_from_a_test_trains_through_the_cli(
    noise, cli_in_process, tmp_path, data_cache
):
    job = tmp_path / "job"
    status = cli_in_process(
        *TINY,
        f"data.cache_dir={data_cache}",
        f"hydra.run.dir={job}",
        f"hydra.searchpath=[file://{noise}]",
        "regularizer=noise",
        "regularizer.sigma=0.25",
    )
    assert status.returncode == 0, status.stderr[-3000:]
    record = load_record(job)
    assert record.status == "completed"
    assert record.config["regularizer"] == {
        "name": "noise",
        "cfg_dropout": "keep",
        "groups": record.config["regularizer"]["groups"],
        "sigma": 0.25,
    }
    # tinyresnet: one block per group, two BNs each and a projection shortcut's BN.
    assert record.placements == [
        "noise:layer3.0.bn1",
        "noise:layer3.0.bn2",
        "noise:layer3.0.downsample.1",
        "noise:layer4.0.bn1",
        "noise:layer4.0.bn2",
        "noise:layer4.0.downsample.1",
    ]


def test_the_toys_own_rules_and_keys_are_enforced(noise):
    search = f"hydra.searchpath=[file://{noise}]"
    cfg = compose([*TINY, search, "regularizer=noise"])
    assert set(cfg.regularizer) == NOISE.keys == {"name", "cfg_dropout", "groups", "sigma"}
    with pytest.raises(ConfigError, match=r"^regularizer.sigma must be > 0 and finite, got -1.0$"):
        compose([*TINY, search, "regularizer=noise", "regularizer.sigma=-1"])
    with pytest.raises(ConfigError, match=r"^regularizer.window: no such key"):
        compose([*TINY, search, "regularizer=noise", "regularizer.window=2"])


def test_the_toy_is_placed_and_is_the_identity_in_eval(noise):
    model = create_backbone("tinyresnet", num_classes=10)
    groups, paths = group_modules(model, "tinyresnet"), group_paths(model, "tinyresnet")
    placed = apply_regularizer(model, groups, paths, "noise", {"4": {"p": 0.5}}, {"sigma": 2.0})
    assert placed == ["noise:layer4.0.bn1", "noise:layer4.0.bn2", "noise:layer4.0.downsample.1"]
    layers = [m for m in model.modules() if isinstance(m, GaussianNoise)]
    assert {(m.p, m.sigma) for m in layers} == {(0.5, 2.0)}
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(layers[0].eval()(x), x) and not torch.equal(layers[0].train()(x), x)


# -- the registry ------------------------------------------------------------------------------------


def test_the_registry_holds_the_built_ins_in_report_order():
    assert registry.names() == BUILT_INS
    assert [registry.label(name) for name in BUILT_INS] == list(BUILT_INS)
    assert registry.label("from_an_old_record") == "from_an_old_record"
    spec = {name: registry.get(name) for name in BUILT_INS}
    assert [n for n in BUILT_INS if spec[n].places_blocks] == ["dropblock", "dropblock_cbn"]
    assert [n for n in BUILT_INS if spec[n].converts_bn] == ["cbn", "dropblock_cbn"]
    with pytest.raises(KeyError, match="unknown regularizer 'dropblok'"):
        registry.get("dropblok")


def test_a_registered_regularizer_has_its_report_row_and_label(noise):
    from reports.tables import row_label, row_order

    assert registry.names() == (*BUILT_INS, "noise")
    assert registry.label("noise") == "Gaussian noise"
    assert row_label("regularizer", "noise") == "Gaussian noise"
    assert row_label("batch", 64) == 64
    assert row_order(["zeta", "noise", "cbn", "none", "alpha"]) == [
        "none",
        "cbn",
        "noise",
        "alpha",
        "zeta",
    ]


def test_unknown_names_in_old_records_sort_after_the_registered_ones():
    from reports.tables import row_order

    assert row_order(["zeta", "noise", "dropblock_cbn", "none"]) == [
        "none",
        "dropblock_cbn",
        "noise",
        "zeta",
    ]


def test_a_name_is_registered_once(noise):
    with pytest.raises(ValueError, match="regularizer 'noise' is already registered"):
        registry.register(NOISE)
    with pytest.raises(ValueError, match="regularizer 'dropblock' is already registered"):
        registry.register(registry.Regularizer(name="dropblock", schema=RegularizerConfig))


def test_a_schema_must_extend_the_base(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @dataclass
    class Loose:
        name: str = "loose"

    with pytest.raises(TypeError, match="schema must be a dataclass subclassing"):
        registry.register(registry.Regularizer(name="loose", schema=Loose))
    assert "loose" not in registry.names()


# -- composed configs hold their own keys only -------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_composed_regularizer_holds_exactly_its_schemas_keys(make_cfg, name):
    cfg = make_cfg(f"regularizer={name}")
    validate(cfg)
    assert set(cfg.regularizer) == registry.get(name).keys


def test_no_regularizer_carries_another_ones_keys(make_cfg):
    def keys(name: str) -> set[str]:
        return set(make_cfg(f"regularizer={name}").regularizer)

    assert not {"window", "scope"} & keys("none")
    assert not {"window", "scope"} & keys("dropout")
    assert "scope" not in keys("cbn") and "window" in keys("cbn")
    assert "window" not in keys("dropblock") and "scope" in keys("dropblock")
    assert {"window", "scope"} <= keys("dropblock_cbn")


def test_dropblock_cbn_is_dropblock_plus_cbn(make_cfg):
    """dropblock_cbn.yaml repeats dropblock.yaml's values (an option extends only its own
    schema): held equal here, so the two cannot drift."""
    composed = {name: make_cfg(f"regularizer={name}").regularizer for name in BUILT_INS}
    both = composed["dropblock_cbn"]
    for part in ("dropblock", "cbn"):
        for key in own_keys(registry.get(part).schema):
            assert both[key] == composed[part][key], (part, key)
    assert both.groups == composed["dropblock"].groups
    assert set(both) == {*composed["dropblock"], *composed["cbn"]}


@pytest.mark.parametrize(
    ("regularizer", "key", "owners"),
    [
        ("none", "window", "cbn, dropblock_cbn"),
        ("none", "scope", "dropblock, dropblock_cbn"),
        ("dropout", "cbn_mode", "cbn, dropblock_cbn"),
        ("cbn", "scope", "dropblock, dropblock_cbn"),
        ("dropblock", "window", "cbn, dropblock_cbn"),
    ],
)
def test_another_regularizers_key_fails_naming_it(regularizer, key, owners):
    with pytest.raises(ConfigError) as info:
        compose([*TINY, f"regularizer={regularizer}", f"regularizer.{key}=1"])
    assert str(info.value).startswith(
        f"regularizer.{key}: no such key (a key of regularizer={owners}); "
    )


def test_a_key_no_regularizer_has_gets_no_owners():
    with pytest.raises(ConfigError, match=r"^regularizer.windwo: no such key; "):
        compose([*TINY, "regularizer=cbn", "regularizer.windwo=1"])


def test_a_name_without_its_options_is_refused(make_cfg):
    with pytest.raises(ConfigError) as info:
        validate(make_cfg("regularizer.name=dropblock"))
    assert str(info.value) == (
        "regularizer.name=dropblock does not match the keys composed for the regularizer "
        "(gamma, kernel, rescale, schedule, scope): choose it with regularizer=dropblock"
    )


def test_an_unknown_name_is_refused_as_before(make_cfg):
    with pytest.raises(ConfigError) as info:
        validate(make_cfg("regularizer.name=dropblok"))
    assert str(info.value) == (
        "regularizer.name must be one of cbn, dropblock, dropblock_cbn, dropout, none, "
        "got 'dropblok'; did you mean 'dropblock', 'dropblock_cbn', 'dropout'?"
    )


def test_the_registry_imports_no_torch():
    """Hydra imports the schemas for --help and every tab completion."""
    code = "import sys, regularizers, runners.config.schema; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
