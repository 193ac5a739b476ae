"""Darknet cfgs read and run as Darknet reads and runs them (issue 16): the parser's tolerance of
Darknet's own cfgs, conv dilation, gelu, and the sections a classifier cfg needs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

from models.darknet import DarknetCfgError, DarknetNet, parse_cfg, parse_cfg_text

NET = "[net]\nwidth={w}\nheight={w}\nchannels={c}\n"


def _net(text: str, tmp_path: Path, **kwargs: object) -> DarknetNet:
    path = tmp_path / "net.cfg"
    path.write_text(text)
    return DarknetNet(parse_cfg(path), **kwargs)


# --- 1. the parser: inline comments and repeated keys as Darknet reads them ------------------------
def test_a_comment_after_a_number_is_read_as_atoi_reads_it():
    cfg = parse_cfg_text(
        NET.format(w=8, c=3)
        + "[convolutional]\nfilters=40 #32\nsize = 3 ; was 1\npad=1\nactivation=leaky\n"
        + "[route]\nlayers=-1 # the conv\n"
        + "[dropout]\nprobability=0.25#0.5\n"
    )
    conv, route, dropout = cfg.layers
    assert (conv["filters"], conv["size"]) == (40, 3)
    assert route["layers"] == [-1]
    assert dropout["probability"] == 0.25
    # parse_route runs atoi on each comma-separated part: "-1#,-2" is two layers, -1 and -2.
    two = parse_cfg_text(NET.format(w=8, c=3) + "[conv]\n[conv]\n[route]\nlayers=-1#,-2\n")
    assert two.layers[2]["layers"] == [-1, -2]


def test_a_comment_after_a_name_is_an_error_naming_the_line():
    # Darknet reads "leaky#mish" whole, finds no such activation and goes with relu: refused.
    with pytest.raises(DarknetCfgError, match=r"^<cfg>:6: \[convolutional\] activation: "
                       r"'leaky#mish' holds a comment; Darknet reads a name whole"):  # fmt: skip
        parse_cfg_text(NET.format(w=8, c=3) + "[convolutional]\nactivation=leaky #mish\n")


def test_a_repeated_key_is_warned_about_once_and_the_first_value_wins(caplog):
    text = (
        NET.format(w=8, c=3)  # lines 1-4
        + "batch=64\nlearning_rate=0.1\nbatch=128\nlearning_rate=0.2\nbatch=1\n"  # 5-9
        + "[convolutional]\nfilters=8\nfilters=9\nfilters=oops\n"  # 10-13
    )
    with caplog.at_level(logging.WARNING, logger="models.darknet.parse"):
        cfg = parse_cfg_text(text, "net.cfg")
    # option_list.c: option_insert appends, option_find returns the first match.
    assert cfg.net["batch"] == 64 and cfg.net.unused == {"learning_rate": "0.1"}
    assert cfg.layers[0]["filters"] == 8  # the later "oops" is never read, as in Darknet
    assert cfg.layers[0].written["filters"] == [11, 12, 13]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith(
        "net.cfg:5: [net] batch: given again on lines 7, 9; Darknet uses the first (line 5)"
    )
    assert messages[1].startswith(
        "net.cfg:6: [net] learning_rate: given again on line 8; Darknet uses the first (line 6)"
    )
    assert re.match(r"net\.cfg:11: \[convolutional\] filters: given again on lines 12, 13;",
                    messages[2])  # fmt: skip


# --- 2. dilation: Darknet pads size/2 * dilation -------------------------------------------------
@pytest.mark.parametrize(("dilation", "stride", "side"), [(2, 1, 9), (3, 1, 8), (2, 2, 8)])
def test_a_dilated_conv_with_pad_1_keeps_darknets_output_size(tmp_path, dilation, stride, side):
    net = _net(
        NET.format(w=side, c=2)
        + f"[convolutional]\nfilters=3\nsize=3\nstride={stride}\npad=1\ndilation={dilation}\n"
        + "activation=linear\n",
        tmp_path,
    )
    out_side = (side + 2 * 1 - 3) // stride + 1  # convolutional_out_height, dilation left out
    assert net.info[0].output == (3, out_side, out_side)
    if stride == 1:
        assert out_side == side
    # The FLOPs/shape table agrees: Darknet's l.bflops on that output.
    assert net.info[0].bflops == pytest.approx(2 * 2 * 3 * 9 * out_side * out_side / 1e9)
    x = torch.randn(1, 2, side, side)
    conv = net.layers[0].conv
    # im2col_cpu_ext with padding l.pad * l.dilation and the dilation
    ref = torch.nn.functional.conv2d(
        x, conv.weight, conv.bias, stride=stride, padding=dilation, dilation=dilation
    )
    got = net(x).view(1, 3, out_side, out_side)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref)


def test_a_dilated_conv_whose_sizes_disagree_in_darknet_is_an_error(tmp_path):
    with pytest.raises(DarknetCfgError, match=r":8: \[convolutional\] dilation: dilation=2 with "
                       r"size=3 and padding 0: Darknet sizes the output 6x6"):  # fmt: skip
        _net(NET.format(w=8, c=2) + "[convolutional]\nsize=3\npadding=0\ndilation=2\n", tmp_path)


# --- 3. gelu: Darknet's tanh approximation ---------------------------------------------------------
def test_gelu_is_darknets_tanh_approximation(tmp_path):
    net = _net(NET.format(w=4, c=2) + "[convolutional]\nfilters=2\nactivation=gelu\n", tmp_path)
    act = net.layers[0].act
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    # AlexeyAB activations.h gelu_activate, written out
    darknet = 0.5 * x * (1 + torch.tanh(0.797885 * x + 0.035677 * torch.pow(x, 3)))
    torch.testing.assert_close(act(x), darknet, rtol=0, atol=1e-12)
    # ... which is PyTorch's tanh GELU up to the constants' rounding, and not the exact erf form.
    tanh_gelu = torch.nn.GELU(approximate="tanh")(x)
    assert (act(x) - tanh_gelu).abs().max() < 1e-5
    assert (act(x) - torch.nn.GELU()(x)).abs().max() > 1e-4


# --- 4. sections a classifier cfg needs ------------------------------------------------------------
SE = (  # EfficientNet's squeeze-excitation, as efficientnet_b0.cfg writes it
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=swish\n"  # 0: 4x6x6
    "[avgpool]\n"  # 1: 4x1x1
    "[convolutional]\nfilters=2\nactivation=swish\n"  # 2
    "[convolutional]\nfilters=4\nactivation=logistic\n"  # 3: the per-channel scales
    "[scale_channels]\nfrom=-4\n"  # 4: layer 0 * scales
)


def test_scale_channels_multiplies_the_from_layer_by_per_channel_scales(tmp_path):
    net = _net(NET.format(w=6, c=3) + SE, tmp_path)
    assert net.info[4].output == (4, 6, 6) and net.info[4].bflops == 0
    x = torch.randn(2, 3, 6, 6)
    seen = {}
    for i in (0, 3):
        net.layers[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
    got = net(x).view(2, 4, 6, 6)
    # scale_channels_layer.c: output[i] = input[i / (w*h)] * from_output[i]
    ref = seen[0].flatten() * seen[3].flatten().repeat_interleave(36)
    torch.testing.assert_close(got.flatten(), ref)


def test_scale_channels_with_scale_wh_scales_every_position(tmp_path):
    net = _net(
        NET.format(w=4, c=3)
        + "[convolutional]\nfilters=3\nactivation=linear\n"  # 0: 3x4x4
        + "[convolutional]\nfilters=1\nactivation=logistic\n"  # 1: 1x4x4
        + "[scale_channels]\nfrom=-2\nscale_wh=1\nactivation=relu\n",
        tmp_path,
    )
    x = torch.randn(1, 3, 4, 4)
    a, s = net.layers[0](x), net.layers[1](net.layers[0](x))
    # input_index = i % (w*h) + (i / (c*w*h)) * (w*h): one scale per position, all channels
    torch.testing.assert_close(net(x).view(1, 3, 4, 4), torch.relu(a * s))


def test_scale_channels_of_the_wrong_shape_is_an_error(tmp_path):
    # make_scale_channels_layer asserts the scales are 1x1 with the from layer's channels
    wrong = SE.replace(
        "[scale_channels]\nfrom=-4\n", "[conv]\nfilters=2\n[scale_channels]\nfrom=-5\n"
    )
    with pytest.raises(
        DarknetCfgError, match=r"\[scale_channels\] from: .* must be 4x1x1, got 2x1x1"
    ):
        _net(NET.format(w=6, c=3) + wrong, tmp_path)


@pytest.mark.parametrize(("stride", "scale"), [(2, 1.0), (3, 0.5), (-2, 1.0), (-2, 0.25)])
def test_upsample_repeats_pixels_or_sums_blocks(tmp_path, stride, scale):
    net = _net(NET.format(w=4, c=2) + f"[upsample]\nstride={stride}\nscale={scale}\n", tmp_path)
    x = torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)
    s = abs(stride)
    out_side = 4 * s if stride > 0 else 4 // s
    assert net.info[0].output == (2, out_side, out_side)
    got = net(x).view(1, 2, out_side, out_side)
    ref = torch.zeros(1, 2, out_side, out_side)
    # upsample_cpu, literally: forward copies in[j/s][i/s] scaled; reverse adds into out[j/s][i/s]
    for k in range(2):
        for j in range(max(4, out_side)):
            for i in range(max(4, out_side)):
                if stride > 0:
                    ref[0, k, j, i] = scale * x[0, k, j // s, i // s]
                elif j < out_side * s and i < out_side * s:
                    ref[0, k, j // s, i // s] += scale * x[0, k, j, i]
    torch.testing.assert_close(got, ref)


def test_crop_and_binary_convs_are_refused_saying_why(tmp_path):
    with pytest.raises(DarknetCfgError, match=r":5: \[crop\]: not supported: Darknet's crop "
                       r"layer is training-time augmentation"):  # fmt: skip
        _net(NET.format(w=8, c=3) + "[crop]\ncrop_width=6\ncrop_height=6\nflip=1\n", tmp_path)
    for key in ("xnor", "binary"):
        with pytest.raises(DarknetCfgError, match=rf":7: \[convolutional\] {key}: binary "
                           r"convolutions .* not supported"):  # fmt: skip
            _net(NET.format(w=8, c=3) + f"[convolutional]\nsize=3\n{key}=1\n", tmp_path)
