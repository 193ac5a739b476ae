"""Published Darknet classifier cfgs, checked against the BFLOPs Darknet printed for them (issue 16).

The networks are Darknet's EfficientNet-B0 (``enetb0.cfg`` / ``efficientnet_b0.cfg``) and the
three CSPNet ``-elastic`` classifiers. The cfg files are not copied here. Compact generators
below emit cfg text with the same sections, keys and values; comments and the training keys of
``[net]`` are left out. ``SOURCES.md`` next to this file names the originals and says why they
are generated rather than copied. With the originals in a folder named by
``DARKNET_PUBLISHED_CFG_DIR``, ``test_the_generators_reproduce_the_published_cfgs`` compares
section for section (it skips otherwise).

Where the expected numbers come from:

- *Published*: the CSPNet README (WongKinYiu/CrossStagePartialNetworks ``README.md``,
  commit 05cd0fde) gives a BFLOPs column: EfficientNet-B0* 0.915 with 4.81M parameters;
  CSPResNeXt-50-Elastic 5.45, CSPResNet-50-Elastic 9.36, CSPDarkNet-53-Elastic 7.74. AlexeyAB
  (AlexeyAB/darknet#3380, comment of 2019-11-29) gives "EfficientNet B0 (224x224) 0.9 BFLOPS,
  4.9M params". The README's 2-decimal figures are Darknet's 3-decimal ``Total BFLOPS``
  truncated: the same table has DarkNet-53 at 18.57 and ResNeXt-50 at 10.11 for Darknet's
  18.576 and 10.119 (``../shared/reference/darknet-cfg/SOURCES.md``).
- *By hand*: the per-layer shapes and BFLOPs use AlexeyAB Darknet's formulas
  (``../shared/reference/darknet-cspnet.md`` section 4). Each was also checked layer by layer
  against an independent calculator run on the original files. No Darknet-printed layer table
  of these cfgs was found, so the shapes have no printed reference.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from models.__main__ import main as models_main
from models.darknet import DarknetNet, parse_cfg, parse_cfg_text


# --- cfg text generators ------------------------------------------------------------------------
def _section(kind: str, **keys: object) -> str:
    return f"[{kind}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()) + "\n"


def _conv(filters: int, size: int, stride: int = 1, act: str = "leaky", *, bn=1, **extra) -> str:
    keys = {"batch_normalize": 1} if bn else {}
    keys |= {"filters": filters, "size": size, "stride": stride, "pad": 1, **extra}
    return _section("convolutional", **keys, activation=act)


def _net(side: int) -> str:
    return _section("net", batch=128, subdivisions=4, width=side, height=side, channels=3)


def _classifier_head() -> str:
    """Every cfg here ends so: global average, a 1000-way 1x1 conv (bias, no BN), softmax."""
    return _section("avgpool") + _conv(1000, 1, act="linear", bn=0) + _section("softmax", groups=1)


class _Layers:
    """Sections in order, with the index each will have, so routes can name earlier layers."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def add(self, *sections: str) -> int:
        """Append ``sections``; returns the index of the last one."""
        self.text += sections
        return len(self.text) - 1

    def back_to(self, index: int) -> int:
        """The relative offset from the next layer to ``index`` (negative)."""
        return index - len(self.text)


def _elastic_block(layers: _Layers, bottleneck: list[str], act: str) -> None:
    """One ELASTIC residual block of CSPNet's cfgs.

    The input's channels split in two halves: one half runs ``bottleneck`` at full
    resolution. The other is max-pooled 2x2, runs the same bottleneck at half resolution and
    is upsampled back. The two are concatenated and added to the block's input.
    """
    depth = len(bottleneck)
    layers.add(_section("route", layers=-1, group_id=0, groups=2), *bottleneck)
    layers.add(_section("route", layers=-(depth + 2), group_id=1, groups=2))
    layers.add(_section("maxpool", size=2, stride=2), *bottleneck, _section("upsample", stride=2))
    layers.add(_section("route", layers=f"-{depth + 4},-1"))
    layers.add(_section("shortcut", **{"from": -(2 * depth + 6)}, activation=act))


def csp_resnet_elastic_cfg(grouped: bool) -> str:
    """CSPResNeXt-50-Elastic (``grouped``) or CSPResNet-50-Elastic at 256x256.

    Stages of bottleneck width 64/128/256/512 hold 3/3/5/2 blocks. Each stage is split CSP-wise
    into a part that skips the blocks (``part``) and a part that runs them. The transition
    concatenates both and, except after the last stage, downsamples with a stride-2 3x3 conv
    (grouped 32 in ResNeXt). The published cfgs leave the two 1x1 convs after that conv
    linear, except after stage 3, where they are leaky: reproduced as written.
    """
    layers = _Layers()
    layers.add(_conv(64, 7, 2), _section("maxpool", size=2, stride=2))
    part = layers.add(_conv(128, 1))
    layers.add(_section("route", layers=-2), _conv(128, 1))
    widths, blocks = (64, 128, 256, 512), (3, 3, 5, 2)
    for stage, (n, count) in enumerate(zip(widths, blocks, strict=True)):
        groups = {"groups": 16} if grouped else {}
        bottleneck = [_conv(n, 1), _conv(n, 3, **groups), _conv(n, 1, act="linear")]
        for _ in range(count):
            _elastic_block(layers, bottleneck, "leaky")
        layers.add(_conv(2 * n, 1))
        layers.add(_section("route", layers=f"-1,{layers.back_to(part)}"))
        if stage == len(widths) - 1:
            layers.add(_conv(2048 if grouped else 1024, 1))
            break
        act = "leaky" if stage == 2 else "linear"
        if grouped:
            layers.add(_conv(4 * n, 1), _conv(4 * n, 3, 2, groups=32))
        else:
            layers.add(_conv(2 * n, 1), _conv(2 * n, 3, 2))
        part = layers.add(_conv(4 * n, 1, act=act))
        layers.add(_section("route", layers=-2), _conv(4 * n, 1, act=act))
    return _net(256) + "".join(layers.text) + _classifier_head()


def csp_darknet53_elastic_cfg() -> str:
    """CSPDarkNet-53-Elastic at 256x256: a 3x3 stem, then five stages of 1/2/8/8/4 blocks.

    Each stage opens with a stride-2 3x3 conv and splits CSP-wise. Its blocks are ELASTIC
    blocks of a 1x1 + 3x3 bottleneck with linear shortcuts. The transition concatenates the
    two parts.
    """
    layers = _Layers()
    layers.add(_conv(32, 3))
    for down, count in zip((64, 128, 256, 512, 1024), (1, 2, 8, 8, 4), strict=True):
        width = max(64, down // 2)
        layers.add(_conv(down, 3, 2))
        part = layers.add(_conv(width, 1))
        layers.add(_section("route", layers=-2), _conv(width, 1))
        for _ in range(count):
            _elastic_block(layers, [_conv(width // 2, 1), _conv(width // 2, 3)], "linear")
        layers.add(_conv(width, 1))
        layers.add(_section("route", layers=f"-1,{layers.back_to(part)}"), _conv(down, 1))
    return _net(256) + "".join(layers.text) + _classifier_head()


#: Darknet's EfficientNet-B0, stage by stage: depthwise kernel, the first block's stride, output
#: channels and, per block, (expand filters, squeeze-excitation filters). The values are the
#: cfg's. They are not all the paper's: stage 4 (80 channels) keeps stride 1 and stage 5 has
#: the stride 2. Some expand widths are narrower than 6x the input (192 for 40 -> 240).
ENET_B0_STAGES = (
    (3, 1, 16, ((32, 8),)),
    (3, 2, 24, ((96, 16), (144, 8))),
    (5, 2, 40, ((144, 8), (192, 16))),
    (3, 1, 80, ((192, 16), (384, 24), (384, 24))),
    (5, 2, 112, ((384, 24), (576, 32), (576, 32))),
    (5, 2, 192, ((576, 32), (960, 64), (960, 64), (960, 64))),
    (3, 1, 320, ((960, 64),)),
)


def efficientnet_b0_cfg() -> str:
    """Darknet's EfficientNet-B0 at 224x224 (``enetb0.cfg``, ``efficientnet_b0.cfg``).

    Each MBConv block has a 1x1 expand conv, a depthwise conv, squeeze-excitation
    (``[avgpool]``, two 1x1 convs without BN, ``[scale_channels]``) and a linear 1x1 projection,
    all BN + swish but the SE's logistic gate. A block that keeps the stride and the channels
    adds its input after ``[dropout] p=0.2``. The head is a 1280-filter 1x1 conv, global
    average and dropout before the classifier.
    """

    def bn_conv(filters: int, size: int, stride: int = 1, act: str = "swish", **extra) -> str:
        keys = {"filters": filters, "size": size, "stride": stride, "pad": int(size > 1), **extra}
        return _section("convolutional", **keys, batch_normalize=1, activation=act)

    def se_conv(filters: int, act: str) -> str:
        return _section("convolutional", filters=filters, size=1, stride=1, activation=act)

    text = _net(224) + bn_conv(32, 3, 2)
    channels = 32
    for kernel, first_stride, out, blocks in ENET_B0_STAGES:
        for number, (expand, squeeze) in enumerate(blocks):
            stride = first_stride if number == 0 else 1
            text += (
                bn_conv(expand, 1)
                + bn_conv(expand, kernel, stride, groups=expand)
                + _section("avgpool")
                + se_conv(squeeze, "swish")
                + se_conv(expand, "logistic")
                + _section("scale_channels", **{"from": -4})
                + bn_conv(out, 1, act="linear")
            )
            if stride == 1 and channels == out:
                text += _section("dropout", probability=0.2)
                text += _section("shortcut", **{"from": -9}, activation="linear")
            channels = out
    text += bn_conv(1280, 1) + _section("avgpool") + _section("dropout", probability=0.2)
    return (
        text
        + _section("convolutional", filters=1000, size=1, stride=1, pad=0, activation="linear")
        + _section("softmax", groups=1)
    )


# --- expected numbers ---------------------------------------------------------------------------
#: name -> (generator, layers, Total BFLOPS as Darknet prints it (%5.3f), conv weights,
#: the published BFLOPs and its number of decimals, kind counts).
PUBLISHED = {
    "csresnext50-elastic": (
        lambda: csp_resnet_elastic_cfg(grouped=True), 188, "5.452", 16_857_792, (5.45, 2),
        {"convolutional": 99, "route": 47, "maxpool": 14, "upsample": 13, "shortcut": 13,
         "avgpool": 1, "softmax": 1},
    ),
    "csresnet50-elastic": (
        lambda: csp_resnet_elastic_cfg(grouped=False), 188, "9.367", 29_795_520, (9.36, 2),
        {"convolutional": 99, "route": 47, "maxpool": 14, "upsample": 13, "shortcut": 13,
         "avgpool": 1, "softmax": 1},
    ),
    "csdarknet53-elastic": (
        csp_darknet53_elastic_cfg, 269, "7.745", 19_045_216, (7.74, 2),
        {"convolutional": 119, "route": 79, "maxpool": 23, "upsample": 23, "shortcut": 23,
         "avgpool": 1, "softmax": 1},
    ),
    "enetb0": (
        efficientnet_b0_cfg, 136, "0.915", 4_808_384, (0.915, 3),
        {"convolutional": 83, "avgpool": 17, "scale_channels": 16, "dropout": 10,
         "shortcut": 9, "softmax": 1},
    ),
}  # fmt: skip

#: name -> rows (index, type, output C x H x W, BFLOPs) worked out by hand with Darknet's formulas.
ROWS = {
    "csresnext50-elastic": [
        # conv 7x7/2, 3 -> 64, 256 -> 128: 2 * 3 * 64 * 49 * 128^2 / 1e9
        (0, "convolutional", [64, 128, 128], 2 * 3 * 64 * 49 * 128**2 / 1e9),
        # maxpool 2x2/2 (padding 1 by default: (128 + 1 - 2) / 2 + 1 = 64): 4 * 64 * 64^2
        (1, "maxpool", [64, 64, 64], 4 * 64 * 64**2 / 1e9),
        # the first block: half of 128 channels, 3x3 conv of 16 groups: 2 * 4 * 64 * 9 * 64^2
        (5, "route", [64, 64, 64], 0.0),
        (7, "convolutional", [64, 64, 64], 2 * 4 * 64 * 9 * 64**2 / 1e9),
        (9, "route", [64, 64, 64], 0.0),
        (10, "maxpool", [64, 32, 32], 4 * 64 * 32**2 / 1e9),
        (12, "convolutional", [64, 32, 32], 2 * 4 * 64 * 9 * 32**2 / 1e9),
        (14, "upsample", [64, 64, 64], 0.0),
        (15, "route", [128, 64, 64], 0.0),
        (16, "shortcut", [128, 64, 64], 128 * 64**2 / 1e9),
        # stage 1's transition: 128 + 128 channels, then the 32-group 3x3/2 conv to 32x32
        (42, "route", [256, 64, 64], 0.0),
        (44, "convolutional", [256, 32, 32], 2 * 8 * 256 * 9 * 32**2 / 1e9),
        (47, "convolutional", [256, 32, 32], 2 * 256 * 256 * 32**2 / 1e9),
        (85, "route", [512, 32, 32], 0.0),
        (87, "convolutional", [512, 16, 16], 2 * 16 * 512 * 9 * 16**2 / 1e9),
        (90, "convolutional", [512, 16, 16], 2 * 512 * 512 * 16**2 / 1e9),
        # stage 3: half-resolution branches at 8x8; stage 4: at 4x4
        (96, "maxpool", [256, 8, 8], 4 * 256 * 8**2 / 1e9),
        (152, "route", [1024, 16, 16], 0.0),
        (155, "convolutional", [1024, 8, 8], 2 * 1024 * 1024 * 8**2 / 1e9),
        (163, "maxpool", [512, 4, 4], 4 * 512 * 4**2 / 1e9),
        (183, "route", [2048, 8, 8], 0.0),
        (184, "convolutional", [2048, 8, 8], 2 * 2048 * 2048 * 8**2 / 1e9),
        (185, "avgpool", [2048, 1, 1], 0.0),
        (186, "convolutional", [1000, 1, 1], 2 * 2048 * 1000 / 1e9),
    ],
    "csresnet50-elastic": [
        (7, "convolutional", [64, 64, 64], 2 * 64 * 64 * 9 * 64**2 / 1e9),  # ungrouped 3x3
        (44, "convolutional", [128, 32, 32], 2 * 128 * 128 * 9 * 32**2 / 1e9),
        (45, "convolutional", [256, 32, 32], 2 * 128 * 256 * 32**2 / 1e9),
        (183, "route", [2048, 8, 8], 0.0),
        (184, "convolutional", [1024, 8, 8], 2 * 2048 * 1024 * 8**2 / 1e9),
        (186, "convolutional", [1000, 1, 1], 2 * 1024 * 1000 / 1e9),
    ],
    "csdarknet53-elastic": [
        (0, "convolutional", [32, 256, 256], 2 * 3 * 32 * 9 * 256**2 / 1e9),
        (1, "convolutional", [64, 128, 128], 2 * 32 * 64 * 9 * 128**2 / 1e9),
        (9, "maxpool", [32, 64, 64], 4 * 32 * 64**2 / 1e9),
        (13, "route", [64, 128, 128], 0.0),
        (14, "shortcut", [64, 128, 128], 64 * 128**2 / 1e9),
        (17, "convolutional", [64, 128, 128], 2 * 128 * 64 * 128**2 / 1e9),
        (18, "convolutional", [128, 64, 64], 2 * 64 * 128 * 9 * 64**2 / 1e9),
        (45, "convolutional", [256, 32, 32], 2 * 128 * 256 * 9 * 32**2 / 1e9),
        (132, "convolutional", [512, 16, 16], 2 * 256 * 512 * 9 * 16**2 / 1e9),
        (219, "convolutional", [1024, 8, 8], 2 * 512 * 1024 * 9 * 8**2 / 1e9),
        (227, "maxpool", [256, 4, 4], 4 * 256 * 4**2 / 1e9),
        (265, "convolutional", [1024, 8, 8], 2 * 1024 * 1024 * 8**2 / 1e9),
        (267, "convolutional", [1000, 1, 1], 2 * 1024 * 1000 / 1e9),
    ],
    "enetb0": [
        (0, "convolutional", [32, 112, 112], 2 * 3 * 32 * 9 * 112**2 / 1e9),
        # the first MBConv: depthwise 3x3 (1 input channel per filter), SE 32 -> 8 -> 32
        (2, "convolutional", [32, 112, 112], 2 * 1 * 32 * 9 * 112**2 / 1e9),
        (3, "avgpool", [32, 1, 1], 0.0),
        (4, "convolutional", [8, 1, 1], 2 * 32 * 8 / 1e9),
        (6, "scale_channels", [32, 112, 112], 0.0),  # Darknet counts no BFLOPs here
        (7, "convolutional", [16, 112, 112], 2 * 32 * 16 * 112**2 / 1e9),
        (9, "convolutional", [96, 56, 56], 2 * 96 * 9 * 56**2 / 1e9),  # stride 2
        # the first residual (24 -> 24 channels): dropout, then the block's input added
        (22, "dropout", [24, 56, 56], 0.0),
        (23, "shortcut", [24, 56, 56], 24 * 56**2 / 1e9),
        # depthwise 5x5/2 with pad=1: padding = size / 2 = 2, (56 + 4 - 5) / 2 + 1 = 28
        (25, "convolutional", [144, 28, 28], 2 * 144 * 25 * 28**2 / 1e9),
        (30, "convolutional", [40, 28, 28], 2 * 144 * 40 * 28**2 / 1e9),
        (32, "convolutional", [192, 28, 28], 2 * 192 * 25 * 28**2 / 1e9),
        # stage 4 (80 channels) stays at 28x28 in Darknet's cfg; stage 5 halves it
        (46, "convolutional", [80, 28, 28], 2 * 192 * 80 * 28**2 / 1e9),
        (66, "convolutional", [384, 14, 14], 2 * 384 * 25 * 14**2 / 1e9),
        (91, "convolutional", [576, 7, 7], 2 * 576 * 25 * 7**2 / 1e9),
        (130, "convolutional", [320, 7, 7], 2 * 960 * 320 * 7**2 / 1e9),
        (131, "convolutional", [1280, 7, 7], 2 * 320 * 1280 * 7**2 / 1e9),
        (132, "avgpool", [1280, 1, 1], 0.0),
        (133, "dropout", [1280, 1, 1], 0.0),
        (134, "convolutional", [1000, 1, 1], 2 * 1280 * 1000 / 1e9),
    ],
}


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.cfg"
    path.write_text(PUBLISHED[name][0]())
    return path


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_models_cli_prints_darknets_published_bflops(name, tmp_path, capsys):
    _, layers, bflops, weights, (published, decimals), kinds = PUBLISHED[name]
    assert models_main([f"darknet:{_write(tmp_path, name)}", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    rows = table["layers"]
    assert len(rows) == layers
    assert Counter(row["type"] for row in rows) == kinds
    assert f"{table['total_bflops']:.3f}" == bflops  # Darknet's "Total BFLOPS %5.3f"
    # the published figure: Darknet's print, cut to the README's decimals (see the module doc)
    assert math.floor(table["total_bflops"] * 10**decimals) / 10**decimals == published
    assert table["conv_weights"] == weights
    assert math.isclose(sum(row["bflops"] for row in rows), table["total_bflops"])
    for index, kind, output, expected in ROWS[name]:
        row = rows[index]
        assert (row["type"], row["output"]) == (kind, output), index
        assert row["bflops"] == pytest.approx(expected, rel=1e-12, abs=1e-15), index


def test_the_text_table_ends_with_darknets_total_line(tmp_path, capsys):
    assert models_main([f"darknet:{_write(tmp_path, 'enetb0')}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Total BFLOPS 0.915" in lines
    # 4.81M in the CSP README is conv weights; AlexeyAB's "4.9M params" also counts biases
    # and BN scales and shifts: 4,853,720
    assert any(line.startswith("parameters   4,853,720 ") for line in lines)


def test_efficientnet_b0_matches_alexeyabs_rounded_figures(tmp_path):
    # AlexeyAB/darknet#3380: "EfficientNet B0 (224x224) 0.9 BFLOPS ... 4.9M params"
    with torch.device("meta"):
        net = DarknetNet(parse_cfg(_write(tmp_path, "enetb0")))
    params = sum(p.numel() for p in net.parameters())
    assert (round(net.total_bflops, 1), round(params / 1e6, 1)) == (0.9, 4.9)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_published_networks_run_on_real_tensors(name, tmp_path):
    """At 64x64 every ELASTIC half-resolution branch still has an even map to upsample back."""
    net = DarknetNet(parse_cfg(_write(tmp_path, name)), num_classes=10, input_size=64).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 10)


#: The original file of each generated cfg (EfficientNet-B0: both Darknet copies).
ORIGINALS = {
    "csresnext50-elastic": ["csresnext50-elastic.cfg"],
    "csresnet50-elastic": ["csresnet50-elastic.cfg"],
    "csdarknet53-elastic": ["csdarknet53-elastic.cfg"],
    "enetb0": ["enetb0.cfg", "efficientnet_b0.cfg"],
}
ORIGINALS_DIR = os.environ.get("DARKNET_PUBLISHED_CFG_DIR")


@pytest.mark.skipif(
    not ORIGINALS_DIR,
    reason="set DARKNET_PUBLISHED_CFG_DIR to a folder with the original cfgs (SOURCES.md)",
)
@pytest.mark.parametrize(
    "name, original", [(n, f) for n, files in ORIGINALS.items() for f in files]
)
def test_the_generators_reproduce_the_published_cfgs(name, original):
    """Every layer section: same kind, and every value, the written or Darknet's default."""
    path = Path(ORIGINALS_DIR) / original
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    theirs = parse_cfg(path)
    ours = parse_cfg_text(PUBLISHED[name][0]())
    assert [(s.kind, s.values) for s in ours.layers] == [(s.kind, s.values) for s in theirs.layers]
    for key in ("width", "height", "channels"):
        assert ours.net[key] == theirs.net[key]
