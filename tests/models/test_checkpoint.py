"""Local pretrained weights into a built backbone (models/checkpoint.py): real files, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from models.checkpoint import CheckpointError, LoadReport, load_checkpoint, read_state_dict


def _resnet(seed: int, num_classes: int = 5, name: str = "resnet18") -> nn.Module:
    """A randomly initialised timm ResNet whose BatchNorm statistics are not the defaults."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))  # moves running_mean / running_var off 0 / 1
    return model.eval()


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], skip=()) -> None:
    assert set(a) == set(b)
    for key in a:
        if key not in skip:
            assert torch.equal(a[key], b[key]), key


def _one_line_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_round_trip_gives_identical_outputs(tmp_path, suffix):
    source, target = _resnet(0), _resnet(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(source(x), target(x))  # the load below is what makes them equal
    path = _save(source.state_dict(), tmp_path / f"resnet18{suffix}")
    report = load_checkpoint(target, path)
    assert report == LoadReport(path=path, loaded=len(source.state_dict()), reinitialised=())
    _assert_same(target.state_dict(), source.state_dict())  # buffers (BN statistics) included
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("classifier", [None, "fc"])
def test_classifier_of_other_classes_is_left_initialised(tmp_path, classifier):
    source, target = _resnet(0, num_classes=1000), _resnet(1, num_classes=5)
    fc_before = {k: v.clone() for k, v in target.fc.state_dict().items()}
    path = _save(source.state_dict(), tmp_path / "imagenet.safetensors")
    report = load_checkpoint(target, path, classifier=classifier)  # None: timm's pretrained_cfg
    assert sorted(report.reinitialised) == ["fc.bias", "fc.weight"]
    assert report.loaded == len(source.state_dict()) - 2
    _assert_same(target.state_dict(), source.state_dict(), skip=("fc.weight", "fc.bias"))
    for key, value in target.fc.state_dict().items():
        assert torch.equal(value, fc_before[key]), key


def test_classifier_mismatch_is_an_error_when_the_classifier_is_unknown(tmp_path):
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1000))
    target = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 5))  # no pretrained_cfg
    path = _save(source.state_dict(), tmp_path / "mlp.pt")
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(target, path)
    assert "1.weight: file [1000, 8] vs model [5, 8]" in _one_line_error(excinfo, path)
    assert load_checkpoint(target, path, classifier="1").reinitialised == ("1.weight", "1.bias")


def test_unknown_classifier_name_is_refused(tmp_path):
    path = _save(_resnet(0).state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"classifier 'head\.fc' is not a module of ResNet"):
        load_checkpoint(_resnet(1), path, classifier="head.fc")


def test_missing_and_unexpected_keys_are_one_error_with_counts(tmp_path):
    state = _resnet(0).state_dict()
    del state["layer1.0.conv1.weight"], state["layer4.1.bn2.running_var"]
    state.update({f"extra.{i}": torch.zeros(1) for i in range(3)})
    path = _save(state, tmp_path / "edited.pth")
    target = _resnet(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(target, path)
    message = _one_line_error(excinfo, path)
    assert "2 missing (layer1.0.conv1.weight, layer4.1.bn2.running_var)" in message
    assert "3 unexpected (extra.0, extra.1, extra.2)" in message
    _assert_same(target.state_dict(), before)  # nothing copied before the checks


def test_shape_mismatch_outside_the_classifier_is_an_error(tmp_path):
    state = _resnet(0).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = _save(state, tmp_path / "conv.safetensors")
    target = _resnet(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(target, path, classifier="fc")
    message = _one_line_error(excinfo, path)
    assert "1 mis-shaped (conv1.weight: file [64, 3, 3, 3] vs model [64, 3, 7, 7])" in message
    assert "missing" not in message and "unexpected" not in message
    _assert_same(target.state_dict(), before)


def test_another_network_is_an_error_with_counts(tmp_path):
    path = _save(_resnet(0).state_dict(), tmp_path / "resnet18.safetensors")
    torch.manual_seed(1)
    target = timm.create_model("resnet34", pretrained=False, num_classes=5)
    missing = [
        k
        for k in target.state_dict()
        if k not in read_state_dict(path) and not k.endswith("num_batches_tracked")
    ]
    assert len(missing) == 80  # 8 more BasicBlocks, 10 tensors each
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(target, path)
    message = _one_line_error(excinfo, path)
    assert "does not fit ResNet: 80 missing (layer1.2.conv1.weight, " in message
    assert ", ... and 72 more)" in message
    assert "unexpected" not in message


class Planted:
    """Built with a path, writes a marker there; pickled, it is rebuilt with ``self.target``."""

    def __init__(self, marker: str | None = None) -> None:
        self.target = marker
        if marker is not None:
            Path(marker).write_text("unpickled")

    def __reduce__(self):
        return (Planted, (self.target,))


def test_pickled_object_is_refused_and_never_built(tmp_path):
    marker = tmp_path / "marker"
    planted = Planted()  # built without a path: writes nothing now
    planted.target = str(marker)  # ... but unpickling it runs Planted(str(marker))
    path = tmp_path / "planted.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": planted}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as excinfo:
        read_state_dict(path)
    message = _one_line_error(excinfo, path)
    assert "weights_only=True) refused it" in message and "Planted" in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file is live: an unsafe load does build it
    assert marker.read_text() == "unpickled"


def _ddp(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"module.{k}": v for k, v in state.items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"state_dict": s, "epoch": 3, "arch": "resnet18"},  # timm train checkpoint
        lambda s: {"model": s, "optimizer": {"lr": 0.1}},  # torchvision references
        lambda s: {"model_state": s},
        lambda s: {"state_dict_ema": s, "epoch": 3},
        _ddp,
        lambda s: {"state_dict": _ddp(s)},
    ],
    ids=["state_dict", "model", "model_state", "state_dict_ema", "ddp", "state_dict_ddp"],
)
def test_wrapped_and_ddp_prefixed_files_load(tmp_path, wrap):
    source, target = _resnet(0), _resnet(1)
    path = tmp_path / "wrapped.pth"
    torch.save(wrap(source.state_dict()), path)
    load_checkpoint(target, path)
    _assert_same(target.state_dict(), source.state_dict())


def test_state_dict_is_preferred_to_the_ema_weights(tmp_path):
    path = tmp_path / "train.pth"
    torch.save({"state_dict_ema": {"w": torch.ones(2)}, "state_dict": {"w": torch.zeros(2)}}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.zeros(2))


def test_only_a_full_prefix_is_stripped(tmp_path):
    path = _save({"module.a": torch.zeros(1), "b": torch.ones(1)}, tmp_path / "mixed.pth")
    assert set(read_state_dict(path)) == {"module.a", "b"}


def test_missing_batch_counts_are_tolerated_and_dtypes_converted(tmp_path):
    source, target = _resnet(0), _resnet(1)
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = _save(state, tmp_path / "half.safetensors")
    report = load_checkpoint(target, path)
    assert report.loaded == len(state)
    for key, value in state.items():
        assert target.state_dict()[key].dtype == source.state_dict()[key].dtype
        assert torch.equal(target.state_dict()[key], value.to(target.state_dict()[key].dtype))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_is_an_error_naming_it(tmp_path, suffix):
    good = _save({"w": torch.randn(64, 64)}, tmp_path / f"good{suffix}")
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="unreadable or corrupt") as excinfo:
        read_state_dict(path)
    _one_line_error(excinfo, path)


def test_directory_and_missing_file_are_errors_naming_them(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory") as excinfo:
        read_state_dict(tmp_path)
    _one_line_error(excinfo, tmp_path)
    with pytest.raises(CheckpointError, match="no such file") as excinfo:
        load_checkpoint(_resnet(0), tmp_path / "absent.safetensors")
    _one_line_error(excinfo, tmp_path / "absent.safetensors")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([torch.zeros(1)], "holds a list, not a mapping of names to tensors"),
        ({"w": torch.zeros(1), "epoch": 3}, "1 value(s) are not tensors ('epoch' is an int)"),
        ({1: torch.zeros(1)}, "1 key(s) are not strings (first: 1)"),
        ({}, "holds zero tensors"),
        ({"state_dict": {}}, "holds zero tensors"),
    ],
    ids=["list", "int_value", "int_key", "empty", "empty_wrapped"],
)
def test_content_that_is_not_tensors_is_described(tmp_path, content, expected):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError) as excinfo:
        read_state_dict(path)
    assert expected in _one_line_error(excinfo, path)


def test_empty_safetensors_file_is_an_error(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    with pytest.raises(CheckpointError, match="holds zero tensors"):
        read_state_dict(path)
