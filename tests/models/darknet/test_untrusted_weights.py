"""Hostile Darknet ``.weights`` files: header and size checked before the body is read."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from models.darknet import DarknetNet, parse_cfg_text
from models.darknet.weights import WeightsFileError, load_weights, save_weights

CFG = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\n[avgpool]\n[connected]\noutput=3\n"  # fmt: skip
#: Floats the cfg needs: conv BN (4 x 4) + weights 4*3*9, connected bias 3 + weights 3*4.
NEEDED = 16 + 108 + 3 + 12


def _net() -> DarknetNet:
    return DarknetNet(parse_cfg_text(CFG, "net.cfg"))


def _header(major: int = 0, minor: int = 2, revision: int = 5, seen: int = 7) -> bytes:
    return struct.pack("<3iQ", major, minor, revision, seen)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"not a Darknet \.weights file \(a header needs 12 bytes for the version, found 0\)"),
        (b"\x00" * 11, r"not a Darknet \.weights file \(a header needs 12 bytes for the version, found 11"),
        (struct.pack("<3i", 0, 2, 5) + b"\x00" * 3, r"header of version 0\.2\.5 needs 20 bytes, found 15"),
        (struct.pack("<3i", 0, 1, 0) + b"\x00", r"header of version 0\.1\.0 needs 16 bytes, found 13"),
        (struct.pack("<3i", -1, 2, 5) + b"\x00" * 8, r"not a Darknet \.weights file \(version -1\.2\.5\)"),
        (_header() + b"\x00" * (4 * NEEDED + 1), rf"holds {NEEDED} floats and 1 stray bytes after its 20-byte header, but net\.cfg needs {NEEDED} \({4 * NEEDED + 20} bytes in all, found {4 * NEEDED + 21}"),
        (_header() + b"\x00" * (4 * NEEDED - 2), rf"holds {NEEDED - 1} floats and 2 stray bytes"),
        (_header() + b"\x00" * (4 * NEEDED - 4), rf"holds {NEEDED - 1} floats after its 20-byte header, but net\.cfg needs {NEEDED}"),
    ],
    ids=["empty", "short-version", "short-seen", "short-old-seen", "negative-version", "odd-length", "cut-off", "one-float-short"],
)  # fmt: skip
def test_bad_files_name_the_file_and_what_was_expected(tmp_path, content, message):
    path = tmp_path / "net.weights"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=rf"^{path}: {message}") as info:
        load_weights(_net(), path)
    assert "\n" not in str(info.value)


def test_the_size_is_checked_before_the_body_is_read(tmp_path, monkeypatch):
    # 256 MB (sparse) where the cfg needs 556 bytes: refused from its stat; reading is not tried.
    path = tmp_path / "big.weights"
    with open(path, "wb") as handle:
        handle.write(_header())
        handle.truncate(256 * 2**20)

    def no_reading(*_args, **_kwargs):
        raise AssertionError("the body was read")

    monkeypatch.setattr(np, "fromfile", no_reading)
    monkeypatch.setattr(type(path), "read_bytes", no_reading)
    with pytest.raises(WeightsFileError, match=r"holds 67,108,859 floats after its 20-byte header"):
        load_weights(_net(), path)


def test_a_directory_or_missing_file_is_one_error(tmp_path):
    with pytest.raises(WeightsFileError, match=rf"^{tmp_path}: cannot read the \.weights file"):
        load_weights(_net(), tmp_path)
    with pytest.raises(WeightsFileError, match=r"nothing\.weights: cannot read the \.weights file"):
        load_weights(_net(), tmp_path / "nothing.weights")


def test_a_good_file_still_loads(tmp_path):
    net = _net()
    net.seen = 640
    save_weights(net, tmp_path / "a.weights")
    assert (tmp_path / "a.weights").stat().st_size == 20 + 4 * NEEDED
    assert load_weights(_net(), tmp_path / "a.weights") == (0, 2, 5)
