"""Hostile Darknet cfgs: sane values, a memory estimate before anything is allocated, one line."""

from __future__ import annotations

import re

import pytest
import torch

from models.__main__ import main as models_main
from models.darknet import DarknetCfgError, DarknetNet, parse_cfg
from models.darknet.parse import MAX_CFG_BYTES
from models.memory import estimate_training_memory
from runners.config import ConfigError
from runners.config.preflight import compose
from tests.conftest import TINY

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"
#: A stem of 10^8 filters: 2.7e9 weights, 10^11 outputs per image (13 TB to train at batch 8).
HUGE = NET + "[convolutional]\nfilters=100000000\nsize=3\npad=1\n[convolutional]\nfilters=4\n[avgpool]\n"  # fmt: skip


def _build(tmp_path, text: str | bytes) -> DarknetNet:
    path = tmp_path / "net.cfg"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with torch.device("meta"):
        return DarknetNet(parse_cfg(path))


@pytest.mark.parametrize(
    ("body", "line", "pattern"),
    [
        ("[convolutional]\nsize=3\npadding=-1\n", 8, r"\[convolutional\] padding: must be >= 0, got -1"),
        ("[maxpool]\nsize=64\nstride=1\npadding=0\n", 7, r"\[maxpool\] size: a 64x64 window with padding 0 does not fit the 32x32 input"),
        ("[convolutional]\nfilters=4\n[maxpool]\nsize=40\nstride=2\npadding=0\n", 9, r"\[maxpool\] size: a 40x40 window with padding 0 does not fit the 32x32 input"),
        ("[convolutional]\nfilters=100000000\nsize=99\npad=1\n", 6, r"\[convolutional\]: 2,940,300,000,000 weights \(100000000x32x32 out\) is more than one layer can hold \(1,099,511,627,776\); check filters, size and \[net\] width/height"),
        ("[convolutional]\nfilters=2000000\nsize=1\nstride=1\n[connected]\noutput=1000000\n", 10, r"\[connected\]: .* weights .* more than one layer"),
        ("[convolutional]\nfilters=4000000000\n", 7, r"\[convolutional\] filters: 4000000000 is out of range \(\|value\| <= 2147483647\)"),
        ("[route]\nlayers=-99999999999\n", 7, r"\[route\] layers: -99999999999 is out of range"),
        ("[dropout]\ndropblock=1\ndropblock_size_abs=-3\n", 8, r"\[dropout\] dropblock_size_abs: must be in \[0, .*got -3"),
        ("[dropout]\ndropblock=1\ndropblock_size_rel=nan\n", 8, r"\[dropout\] dropblock_size_rel: must be in \[0, 1\], got nan"),
        ("[softmax]\ntemperature=inf\n", 7, r"\[softmax\] temperature: must be > 0, got inf"),
    ],
)  # fmt: skip
def test_absurd_values_name_the_file_line_and_key(tmp_path, body, line, pattern):
    with pytest.raises(DarknetCfgError, match=rf"^{tmp_path}/net\.cfg:{line}: {pattern}"):
        _build(tmp_path, NET + "\n" + body)


@pytest.mark.parametrize(
    ("net", "pattern"),
    [
        ("[net]\nwidth=-32\nheight=32\n", r":1: \[net\]: width and height must be set \(> 0\)"),
        ("[net]\nwidth=32\nheight=32\nchannels=-3\n", r":4: \[net\] channels: must be >= 1, got -3"),
        ("[net]\nwidth=2000000\nheight=2000000\n", r":1: \[net\]: a 3x2000000x2000000 input is larger than"),
    ],
)  # fmt: skip
def test_absurd_net_sections_are_refused(tmp_path, net, pattern):
    with pytest.raises(DarknetCfgError, match=rf"^{tmp_path}/net\.cfg{pattern}"):
        _build(tmp_path, net + "[convolutional]\nfilters=4\n")


def test_a_cfg_that_is_not_utf8_or_too_large_is_one_error(tmp_path):
    with pytest.raises(
        DarknetCfgError, match=rf"^{tmp_path}/net\.cfg:3: not UTF-8 text \(byte 0xe9\)"
    ):
        _build(tmp_path, b"[net]\nwidth=32\n# caf\xe9\nheight=32\n")
    with pytest.raises(DarknetCfgError, match=r"net\.cfg: more than 1,048,576 bytes"):
        _build(tmp_path, NET + "#" * MAX_CFG_BYTES)
    # A UTF-8 byte-order mark, as Windows editors write it, is accepted.
    assert _build(tmp_path, b"\xef\xbb\xbf" + (NET + "[convolutional]\n").encode()).layers


def test_the_models_cli_errors_on_a_window_larger_than_its_input(tmp_path, capsys):
    cfg = tmp_path / "pool.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=4\nsize=3\n[maxpool]\nsize=64\npadding=0\n")
    assert models_main([f"darknet:{cfg}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"error: {cfg}:9: [maxpool] size: a 64x64 window with padding 0 does not fit the "
        "30x30 input\n"
    )


def test_the_models_cli_builds_on_the_meta_device(tmp_path, capsys):
    # 3.1e9 weights: the table is printed from shapes; nothing is allocated (12.4 GB as fp32).
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(HUGE)
    assert models_main([f"darknet:{cfg}", "--json"]) == 0
    assert '"conv_weights": 3100000000' in capsys.readouterr().out


def test_the_models_cli_refuses_a_cfg_that_is_not_utf8(tmp_path, capsys):
    # In-process: ``python -m models`` is ``raise SystemExit(main())`` (a subprocess costs seconds).
    cfg = tmp_path / "latin.cfg"
    cfg.write_bytes(b"[net]\n# caf\xe9\nwidth=32\nheight=32\n[convolutional]\n")
    assert models_main([f"darknet:{cfg}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"error: {cfg}:2: not UTF-8 text (byte 0xe9); save the cfg as UTF-8 or ASCII\n"
    )


def test_the_memory_estimate_counts_weights_and_outputs():
    estimate = estimate_training_memory("tinyresnet", 32)
    params = sum(
        p.numel() for p in __import__("models").create_backbone("tinyresnet", 1000).parameters()
    )
    assert estimate.parameters == params
    # Per sample: the stem alone outputs 32 channels x 32 x 32 (conv, BN, ReLU: 3 times).
    assert estimate.outputs_per_sample > 3 * 32 * 32 * 32
    assert estimate.total_bytes(8) - estimate.total_bytes(4) == 4 * 4 * estimate.outputs_per_sample
    # ResNet-50 at 224 trains in about 36 GB at a mini-batch of 256: well under the default 256.
    assert 20e9 < estimate_training_memory("resnet50", 224).total_bytes(256) < 60e9


def test_preflight_refuses_a_network_over_the_memory_limit(tmp_path, make_cfg):
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(HUGE)
    darknet = [*TINY, "backbone=darknet", f"backbone.cfg={cfg}", "batch=8"]
    with pytest.raises(ConfigError) as info:
        compose(darknet)
    message = str(info.value)
    assert re.match(
        rf"backbone darknet \({re.escape(str(cfg))}\) needs about [\d,.]+ GB to train at "
        r"data\.image_size=32 with a mini-batch of 8 \(weights, gradients and momentum [\d,.]+ "
        r"GB, the largest layers\.1\.conv with [\d,]+ weights; layer outputs [\d,.]+ GB\): "
        r"over backbone\.max_memory_gb=256; if the machine has that much memory, raise "
        r"backbone\.max_memory_gb$",
        message,
    ), message
    # The limit applies to every backbone, and it is a plain key.
    with pytest.raises(
        ConfigError,
        match=r"^backbone tinyresnet needs about 0\.\d GB .* over backbone\.max_memory_gb=0\.01;",
    ):
        compose([*TINY, "backbone.max_memory_gb=0.01"])
    with pytest.raises(
        ConfigError, match=r"backbone\.max_memory_gb must be > 0 and finite, got -1"
    ):
        compose([*TINY, "backbone.max_memory_gb=-1"])
    compose([*TINY, "backbone.max_memory_gb=0.5"])


def test_preflight_names_the_cfg_line_of_a_layer_that_cannot_be_built(tmp_path):
    cfg = tmp_path / "pad.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=8\nsize=3\npadding=-1\n[avgpool]\n")
    with pytest.raises(
        ConfigError,
        match=rf"^backbone\.cfg: {cfg}:8: \[convolutional\] padding: must be >= 0, got -1$",
    ):
        compose([*TINY, "backbone=darknet", f"backbone.cfg={cfg}"])


def test_cli_refuses_a_petabyte_network_with_one_line_and_no_record(cli_in_process, tmp_path):
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(HUGE)
    job = tmp_path / "job"
    result = cli_in_process(
        *TINY, "backbone=darknet", f"backbone.cfg={cfg}", "batch=8", f"hydra.run.dir={job}"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: backbone darknet ({cfg}) needs about ")
    assert "raise backbone.max_memory_gb" in lines[0]
    assert not list(tmp_path.rglob("run.json"))
