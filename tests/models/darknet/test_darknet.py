"""Darknet cfg networks: the grammar, Darknet's layer semantics, the seed's cfgs, .weights IO."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layers.cross_iteration_bn import CrossIterationBatchNorm2d
from layers.drop_block import DropBlock2d
from models import create_backbone, group_modules, group_paths
from models.__main__ import main as models_main
from models.darknet import DarknetCfgError, DarknetNet, parse_cfg, parse_cfg_text
from models.darknet.weights import load_weights, save_weights
from regularizers.placement import apply_regularizer
from tests.conftest import ROOT

#: The seed's cfg files with their expected counts; kept outside the repository.
REFERENCE = Path(
    os.environ.get("DARKNET_CFG_DIR", ROOT.parent / "shared" / "reference" / "darknet-cfg")
)
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "SOURCES.md").is_file(),
    reason=f"the reference cfg folder {REFERENCE} is absent (set DARKNET_CFG_DIR)",
)


def _expected_from_sources() -> dict[str, tuple[int, str, str]]:
    """cfg file name -> (layers, BFLOPS text, conv weights text) from SOURCES.md's table."""
    expected = {}
    for line in (REFERENCE / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"\d+", cells[1]):
            continue
        match = re.fullmatch(r"(\S+)(?: \((.*) same graph\))?", cells[0])
        base, variants = match.group(1), match.group(2)
        names = [base] + [f"{base}-{v.strip()}" for v in (variants or "").split(",") if v.strip()]
        for name in names:
            expected[f"{name}.cfg"] = (int(cells[1]), cells[2], cells[3])
    return expected


def _net(text: str, tmp_path: Path, **kwargs: object) -> DarknetNet:
    path = tmp_path / "net.cfg"
    path.write_text(text)
    return DarknetNet(parse_cfg(path), **kwargs)


NET = "[net]\nwidth={w}\nheight={w}\nchannels={c}\n"


# --- the seed's cfg files ------------------------------------------------------------------------
@needs_reference
def test_every_reference_cfg_matches_sources_md():
    expected = _expected_from_sources()
    assert sorted(expected) == sorted(p.name for p in REFERENCE.glob("*.cfg"))
    for name, (layers, bflops, weights) in expected.items():
        net = DarknetNet(parse_cfg(REFERENCE / name))
        assert net.input_shape == (3, 256, 256), name
        assert len(net.layers) == layers, name
        assert f"{net.total_bflops:.3f}" == bflops, name
        assert f"{net.conv_weights / 1e6:.3f}M" == weights, name
        # The counted weights are the model's own conv weights (no classifier head left out).
        own = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))
        assert own == net.conv_weights, name


@needs_reference
def test_csresnext50_layer_shapes_match_the_reference_layer_map():
    net = DarknetNet(parse_cfg(REFERENCE / "csresnext50.cfg")).eval()
    expected = {0: (64, 128, 128), 1: (64, 64, 64), 18: (256, 64, 64), 37: (512, 32, 32),
                64: (1024, 16, 16), 79: (2048, 8, 8), 80: (2048, 8, 8), 81: (2048, 1, 1),
                82: (1000, 1, 1)}  # fmt: skip
    seen = {}
    hooks = [
        net.layers[i].register_forward_hook(
            lambda _m, _i, out, i=i: seen.__setitem__(i, tuple(out.shape[1:]))
        )
        for i in range(len(net.layers))
    ]
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 1000)
    for hook in hooks:
        hook.remove()
    for index, shape in expected.items():
        assert seen[index] == shape == net.info[index].output, index
    # The table's bookkeeping agrees with the tensors everywhere, not only at the stage ends.
    assert all(seen[row.index] == row.output for row in net.info)
    # Downsampling happens in the grouped 3x3 convs (groups=32, stride 2) of layers 20, 39, 66.
    for index in (20, 39, 66):
        conv = net.layers[index].conv
        assert conv.groups == 32 and conv.stride == (2, 2) and conv.kernel_size == (3, 3)
    # Layer 8 adds the 64-channel layer 4 into 128 channels (Darknet's shortcut rule).
    assert net.info[8].input[0] == 128 and net.info[4].output[0] == 64


@needs_reference
def test_group_map_is_stages_by_resolution_and_dropblock_lands_in_groups_3_and_4():
    net = create_backbone("darknet", num_classes=10, cfg=str(REFERENCE / "csresnext50.cfg"))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # the classifier follows the data
    groups = net.group_layers()
    for group, indices in groups.items():
        assert indices
        assert {256 // net.info[i].output[1] for i in indices} == {2 ** (group + 1)}
    assert groups[1][-1] == 19 and groups[4][-1] == 80  # 80: last conv before [avgpool]
    placed = apply_regularizer(
        net,
        group_modules(net, "darknet"),
        group_paths(net, "darknet"),
        "dropblock",
        {"3": {"p": 0.025}, "4": {"p": 0.1, "block_size": 3}},
    )
    convs_with_bn = {
        i
        for i in groups[3] + groups[4]
        if isinstance(getattr(net.layers[i], "bn", None), nn.Sequential)
    }
    assert len(placed) == len(convs_with_bn) > 0
    assert {int(p.split(".")[1]) for p in placed} == convs_with_bn
    assert {net.info[i].output[1] for i in convs_with_bn} == {16, 8}
    for path in placed:
        drop = net.get_submodule(path.split(":", 1)[1])[1]
        group = 3 if int(path.split(".")[1]) in groups[3] else 4
        assert isinstance(drop, DropBlock2d) and drop.p == (0.025 if group == 3 else 0.1)


def test_cbn_converts_every_batchnorm_of_a_cfg_network(tmp_path):
    path = tmp_path / "net.cfg"
    path.write_text(WEIGHTS_CFG)
    net = create_backbone("darknet", num_classes=10, cfg=str(path))
    bns = [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    groups, paths = group_modules(net, "darknet"), group_paths(net, "darknet")
    placed = apply_regularizer(net, groups, paths, "cbn", {}, {"window": 2}, input_size=8)
    # Layer 2's batch_normalize=2 is CmBN already (reported by the cfg, not converted again).
    assert placed == ["cmbn:layers.2.bn", "cbn:layers.0.bn"]
    assert bns == ["layers.0.bn", "layers.2.bn"]
    assert isinstance(net.layers[0].bn, CrossIterationBatchNorm2d)
    assert net.layers[0].bn.mode == "cbn" and net.layers[2].bn.mode == "cmbn"
    net.train()
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


# --- grammar and errors --------------------------------------------------------------------------
def test_unknown_key_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text(NET.format(w=32, c=3) + "\n[convolutional]\nfilters=8\nfilterz=3\n")
    with pytest.raises(DarknetCfgError) as err:
        parse_cfg(path)
    message = str(err.value)
    assert message.startswith(f"{path}:8: [convolutional]: unknown or unsupported key 'filterz'")
    assert "did you mean 'filters'" in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("body", "line", "pattern"),
    [
        ("[convolutionl]\nfilters=8\n", 6, r"unknown or unsupported section \[convolutionl\]"),
        ("[convolutional]\nsize=three\n", 7, r"size: expected an integer, got 'three'"),
        ("[convolutional]\nfilters\n", 7, r"expected key=value"),
        ("[route]\ngroups=2\n", 6, r"the key 'layers' is required"),
        ("[convolutional]\n[route]\nlayers=-3\n", 8, r"refers to layer -3 \(= -2\)"),
        ("[convolutional]\nactivation=leakyy\n", 7, r"activation 'leakyy' is not supported"),
        ("[convolutional]\nbatch_normalize=3\n", 7, r"batch_normalize: must be 0, 1 or 2"),
        ("[convolutional]\nfilters=6\ngroups=4\n", 8, r"groups=4 must divide"),
    ],
)
def test_bad_cfgs_give_one_error_with_the_line(tmp_path, body, line, pattern):
    path = tmp_path / "bad.cfg"
    path.write_text(NET.format(w=32, c=3) + "\n" + body)
    with pytest.raises(DarknetCfgError, match=rf"^{re.escape(str(path))}:{line}: .*{pattern}"):
        DarknetNet(parse_cfg(path))


def test_every_section_kind_has_one_registered_builder():
    from models.darknet.kinds import LAYER_KINDS, register_kind
    from models.darknet.parse import SECTION_ALIASES

    assert set(LAYER_KINDS) == set(SECTION_ALIASES.values()) - {"net"}
    with pytest.raises(ValueError, match=r"Darknet layer kind 'route' is registered twice"):
        register_kind("route")(LAYER_KINDS["route"])


def test_a_kind_without_a_builder_names_the_file_and_line():
    from models.darknet.kinds import LayerContext, Shape, build_layer
    from models.darknet.parse import Section

    cfg = parse_cfg_text("[net]\nwidth=8\nheight=8\n[avgpool]\n", "net.cfg")
    yolo = Section(kind="yolo", header="yolo", line=5)
    context = LayerContext(cfg=cfg, index=1, section=yolo, x=Shape(3, 8, 8), shapes=[],
                           placements=[])  # fmt: skip
    with pytest.raises(DarknetCfgError, match=r"^net\.cfg:5: \[yolo\] has no builder$"):
        build_layer(context)


def test_darknet_defaults_and_aliases():
    cfg = parse_cfg_text(
        "[network]\nwidth = 16\nheight=16\nchannels=3\nlearning_rate=0.1\n# comment\n"
        "[conv]\nfilters=4\n; another\n[max]\n[avg]\n[soft]\n"
    )
    assert [s.kind for s in cfg.layers] == ["convolutional", "maxpool", "avgpool", "softmax"]
    assert cfg.net.unused == {"learning_rate": "0.1"} and cfg.net["batch"] == 1
    net = DarknetNet(cfg)
    conv = net.layers[0]
    # Darknet's [convolutional] defaults: size 1, stride 1, no padding, logistic, no BN (bias).
    assert conv.conv.kernel_size == (1, 1) and conv.conv.padding == (0, 0)
    assert isinstance(conv.act, nn.Sigmoid) and conv.conv.bias is not None
    assert isinstance(conv.bn, nn.Identity)
    # [maxpool] defaults: stride 1, size = stride, padding = size - 1 -> same size.
    assert net.info[1].output == (4, 16, 16)


@pytest.mark.parametrize(("size", "stride", "padding", "side"), [(2, 2, None, 7), (3, 2, None, 6),
                                                                  (3, 1, 1, 5), (5, 3, 4, 8)])  # fmt: skip
def test_maxpool_follows_darknets_window_formula(tmp_path, size, stride, padding, side):
    pad_line = f"padding={padding}\n" if padding is not None else ""
    net = _net(
        NET.format(w=side, c=2) + f"[maxpool]\nsize={size}\nstride={stride}\n{pad_line}", tmp_path
    )
    x = torch.randn(1, 2, side, side)
    got = net(x).view(1, 2, *net.info[0].output[1:])
    # Darknet's forward_maxpool_layer, literally: offset -pad/2, out-of-map positions skipped.
    pad = size - 1 if padding is None else padding
    out_side = (side + pad - size) // stride + 1
    ref = np.full((2, out_side, out_side), -np.inf, dtype=np.float32)
    for k in range(2):
        for i in range(out_side):
            for j in range(out_side):
                for n in range(size):
                    for m in range(size):
                        # C's -pad/2 truncates towards zero
                        r, c = -(pad // 2) + i * stride + n, -(pad // 2) + j * stride + m
                        if 0 <= r < side and 0 <= c < side:
                            ref[k, i, j] = max(ref[k, i, j], x[0, k, r, c].item())
    assert got.shape[1:] == ref.shape
    torch.testing.assert_close(got[0], torch.from_numpy(ref))


def test_shortcut_adds_a_narrower_source_into_the_first_channels(tmp_path):
    net = _net(
        NET.format(w=4, c=3)
        + "[convolutional]\nfilters=2\nactivation=linear\n"
        + "[convolutional]\nfilters=5\nactivation=linear\n"
        + "[shortcut]\nfrom=-2\nactivation=linear\n",
        tmp_path,
    )
    x = torch.randn(2, 3, 4, 4)
    small = net.layers[0](x)
    wide = net.layers[1](small)
    out = net(x).view(2, 5, 4, 4)
    torch.testing.assert_close(out[:, :2], wide[:, :2] + small)
    torch.testing.assert_close(out[:, 2:], wide[:, 2:])


def test_shortcut_from_a_larger_map_adds_every_strideth_pixel(tmp_path):
    # Darknet's ResNet-50 shortcut over a stride-2 block (shortcut_cpu: stride = w1 / w2).
    net = _net(
        NET.format(w=8, c=4)
        + "[convolutional]\nfilters=4\nactivation=linear\n"
        + "[convolutional]\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=linear\n"
        + "[shortcut]\nfrom=-2\nactivation=leaky\n",
        tmp_path,
    )
    x = torch.randn(1, 4, 8, 8)
    big = net.layers[0](x)
    small = net.layers[1](big)
    expected = small.clone()
    expected[:, :4] += big[:, :, ::2, ::2]
    torch.testing.assert_close(net(x).view(1, 6, 4, 4), nn.functional.leaky_relu(expected, 0.1))


def test_shortcut_from_a_smaller_map_adds_into_every_sampleth_pixel(tmp_path):
    # shortcut_cpu's other direction: sample = w2 / w1, the source lands on a strided grid.
    net = _net(
        NET.format(w=8, c=3)
        + "[convolutional]\nfilters=4\nactivation=linear\n"
        + "[convolutional]\nfilters=3\nsize=3\nstride=2\npad=1\nactivation=linear\n"
        + "[route]\nlayers=0\n"
        + "[shortcut]\nfrom=1\nactivation=linear\n",
        tmp_path,
    )
    x = torch.randn(1, 3, 8, 8)
    big = net.layers[0](x)
    small = net.layers[1](big)
    expected = big.clone()
    expected[:, :3, ::2, ::2] += small
    torch.testing.assert_close(net(x).view(1, 4, 8, 8), expected)


def test_route_takes_the_group_id_slice_and_concatenates(tmp_path):
    net = _net(
        NET.format(w=4, c=3)
        + "[convolutional]\nfilters=4\nactivation=linear\n"
        + "[convolutional]\nfilters=6\nactivation=linear\n"
        + "[route]\nlayers=0,-1\ngroups=2\ngroup_id=1\n",
        tmp_path,
    )
    x = torch.randn(2, 3, 4, 4)
    a = net.layers[0](x)
    b = net.layers[1](a)
    out = net(x).view(2, 5, 4, 4)
    torch.testing.assert_close(out, torch.cat([a[:, 2:], b[:, 3:]], dim=1))
    assert net.info[2].output == (5, 4, 4)


def test_dropout_dropblock_and_cmbn_map_onto_the_projects_layers(tmp_path):
    net = _net(
        NET.format(w=16, c=3)
        + "[convolutional]\nbatch_normalize=2\nfilters=4\nsize=3\npad=1\nactivation=mish\n"
        + "[dropout]\nprobability=0.1\ndropblock=1\ndropblock_size_abs=40\n"  # clamped to 16
        + "[dropout]\ndropblock=1\n"  # neither size: abs 7
        + "[dropout]\ndropblock=1\ndropblock_size_rel=0.5\ndropblock_size_abs=3\n"  # abs wins
        + "[dropout]\ndropblock=1\ndropblock_size=0.25\n"  # the first commit's key: rel
        + "[dropout]\n"  # plain dropout, Darknet's default p
        + "[convolutional]\ncbn=1\nfilters=4\n",
        tmp_path,
    )
    assert isinstance(net.layers[0].bn, CrossIterationBatchNorm2d)
    assert net.layers[0].bn.mode == "cmbn" and isinstance(net.layers[0].act, nn.Mish)
    assert net.layers[6].bn.mode == "cmbn"
    blocks = [net.layers[i] for i in range(1, 5)]
    assert all(isinstance(b, DropBlock2d) for b in blocks)
    assert [(b.block_size, b.size_mode) for b in blocks] == [
        (16, "abs"), (7, "abs"), (3, "abs"), (0.25, "rel"),
    ]  # fmt: skip
    assert blocks[0].p == 0.1 and blocks[1].p == pytest.approx(0.2)
    assert all(b.rescale == "sample" and b.schedule == "darknet" for b in blocks)
    assert isinstance(net.layers[5], nn.Dropout) and net.layers[5].p == pytest.approx(0.2)
    assert net.placements() == [
        "cmbn:layers.0.bn", "dropblock:layers.1", "dropblock:layers.2", "dropblock:layers.3",
        "dropblock:layers.4", "dropout:layers.5", "cmbn:layers.6.bn",
    ]  # fmt: skip
    removed = _net((tmp_path / "net.cfg").read_text(), tmp_path, keep_dropout=False)
    assert all(isinstance(removed.layers[i], nn.Identity) for i in range(1, 6))
    assert removed.placements() == ["cmbn:layers.0.bn", "cmbn:layers.6.bn"]


def test_dropout_acts_in_place_on_the_layer_a_route_reads(tmp_path):
    net = _net(
        NET.format(w=4, c=3)
        + "[convolutional]\nfilters=4\nactivation=linear\n"
        + "[dropout]\nprobability=0.5\n"
        + "[route]\nlayers=0\n",
        tmp_path,
    ).train()
    torch.manual_seed(0)
    out = net(torch.randn(2, 3, 4, 4))
    assert (out == 0).any()  # the route sees layer 0's output after the dropout zeroed it


# --- .weights -------------------------------------------------------------------------------------
WEIGHTS_CFG = (
    NET.format(w=8, c=3)
    + "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    + "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
    + "[convolutional]\nbatch_normalize=2\nfilters=4\nsize=3\ngroups=2\npad=1\n"
    + "[avgpool]\n"
    + "[connected]\nbatch_normalize=1\noutput=5\n"
    + "[connected]\noutput=3\nactivation=linear\n"
)


def test_weights_file_layout_follows_darknet(tmp_path):
    net = _net(WEIGHTS_CFG, tmp_path)
    rng = np.random.default_rng(0)
    conv0 = {k: rng.standard_normal(n).astype("<f4")
             for k, n in (("b", 4), ("s", 4), ("m", 4), ("v", 4), ("w", 4 * 3 * 9))}  # fmt: skip
    conv1 = {k: rng.standard_normal(n).astype("<f4") for k, n in (("b", 2), ("w", 2 * 4))}
    conv2 = {k: rng.standard_normal(n).astype("<f4")
             for k, n in (("b", 4), ("s", 4), ("m", 4), ("v", 4), ("w", 4 * 1 * 9))}  # fmt: skip
    fc0 = {k: rng.standard_normal(n).astype("<f4")
           for k, n in (("b", 5), ("w", 5 * 4), ("s", 5), ("m", 5), ("v", 5))}  # fmt: skip
    fc1 = {k: rng.standard_normal(n).astype("<f4") for k, n in (("b", 3), ("w", 3 * 5))}
    header = np.array([0, 2, 5], "<i4").tobytes() + np.array([640], "<u8").tobytes()
    body = b"".join(
        a.tobytes()
        for a in [*conv0.values(), *conv1.values(), *conv2.values(), *fc0.values(), *fc1.values()]
    )
    (tmp_path / "net.weights").write_bytes(header + body)
    assert load_weights(net, tmp_path / "net.weights") == (0, 2, 5) and net.seen == 640
    l0, l1, l2, _, f0, f1 = net.layers
    np.testing.assert_array_equal(l0.bn.bias.detach().numpy(), conv0["b"])
    np.testing.assert_array_equal(l0.bn.weight.detach().numpy(), conv0["s"])
    np.testing.assert_array_equal(l0.bn.running_mean.detach().numpy(), conv0["m"])
    np.testing.assert_array_equal(l0.bn.running_var.detach().numpy(), conv0["v"])
    np.testing.assert_array_equal(l0.conv.weight.detach().numpy().ravel(), conv0["w"])
    np.testing.assert_array_equal(l1.conv.bias.detach().numpy(), conv1["b"])
    np.testing.assert_array_equal(l2.bn.running_var.detach().numpy(), conv2["v"])
    np.testing.assert_array_equal(f0.bn.bias.detach().numpy(), fc0["b"])
    np.testing.assert_array_equal(f0.linear.weight.detach().numpy().ravel(), fc0["w"])
    np.testing.assert_array_equal(f0.bn.running_mean.detach().numpy(), fc0["m"])
    np.testing.assert_array_equal(f1.linear.weight.detach().numpy().ravel(), fc1["w"])
    # An old-format header (version 0.1: int32 seen) reads the same floats.
    old = np.array([0, 1, 0, 7], "<i4").tobytes()
    (tmp_path / "old.weights").write_bytes(old + body)
    assert load_weights(_net(WEIGHTS_CFG, tmp_path), tmp_path / "old.weights")[:2] == (0, 1)


def test_weights_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    net = _net(WEIGHTS_CFG, tmp_path).train()
    net(torch.randn(4, 3, 8, 8))  # non-trivial running statistics
    net.seen = 123456789012
    save_weights(net, tmp_path / "a.weights")
    other = _net(WEIGHTS_CFG, tmp_path)
    load_weights(other, tmp_path / "a.weights")
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values(), strict=True):
        # What Darknet stores: weights, biases, BN scales and rolling statistics (not CmBN's
        # per-step accumulators, which restart with every optimizer step anyway).
        if name.endswith(("weight", "bias", "running_mean", "running_var")):
            assert torch.equal(a, b), name
    assert other.seen == net.seen
    save_weights(other, tmp_path / "b.weights")
    assert (tmp_path / "a.weights").read_bytes() == (tmp_path / "b.weights").read_bytes()
    with pytest.raises(ValueError, match=r"a\.weights: holds .* floats .* needs"):
        load_weights(
            _net(WEIGHTS_CFG.replace("output=3", "output=4"), tmp_path), tmp_path / "a.weights"
        )


# --- python -m models darknet:<cfg> ----------------------------------------------------------------
def _models_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "models", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@needs_reference
def test_models_cli_prints_darknets_layer_table(tmp_path, capsys):
    cfg = REFERENCE / "csresnext50.cfg"
    _, bflops, weights = _expected_from_sources()["csresnext50.cfg"]
    # The real command once, in a subprocess (importing torch and timm costs seconds) ...
    text = _models_cli(f"darknet:{cfg}", "--input", "256")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"Total BFLOPS {bflops}" in lines
    row = next(line for line in lines if re.match(r"\s+18 route ", line))
    assert re.search(r"64 x  64 x  128 ->   64 x  64 x  256\s+0\.000 BF", row)
    conv = next(line for line in lines if re.match(r"\s+0 conv ", line))
    assert "7 x 7/ 2" in conv and "256 x 256 x    3 ->  128 x 128 x   64" in conv
    # ... and its other modes through the same entry point in this process.
    assert models_main([f"darknet:{cfg}", "--input", "256", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert f"{table['total_bflops']:.3f}" == bflops
    assert f"{table['conv_weights'] / 1e6:.3f}M" == weights
    assert len(table["layers"]) == 84 and table["layers"][79]["output"] == [2048, 8, 8]
    assert math.isclose(sum(r["bflops"] for r in table["layers"]), table["total_bflops"])
    bad = tmp_path / "bad.cfg"
    bad.write_text(NET.format(w=32, c=3) + "[convolutional]\nsize=3\nstrid=2\n")
    assert models_main([f"darknet:{bad}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {bad}:7:") and "'strid'" in error
