"""Reports read files they did not write (issue 13, item 8): a broken run record is listed,
not fatal, and a storage named inside the directory is opened only if it lies inside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.reports_fixture import _config, _record

BROKEN = {
    "not-json": b"{not json",
    "an-array": b"[]",
    "null": b"null",
    "config-array": json.dumps({"schema_version": 2, "status": "completed", "config": []}).encode(),
    "batch-string": json.dumps(
        {"schema_version": 2, "status": "completed", "batch": "64"}
    ).encode(),
    "not-utf8": b'{"schema_version": 2, "status": "\xff\xfe"}',
    "deep": b"[" * 100_000,
}
REASONS = {
    "not-json": "Expecting property name enclosed in double quotes",
    "an-array": "the file holds an array, not an object",
    "null": "the file holds null, not an object",
    "config-array": "config is an array, not an object",
    "batch-string": "batch is str '64'",
    "not-utf8": "utf-8",
    "deep": "recursion",
}


def _good(root: Path, name: str, seed: int) -> None:
    config = _config("classify", "tinyresnet", "none", 2, seed, 64)
    _record(config, {"top1": 60.0 + seed, "top5": 80.0, "loss": 1.0}).write(root / name)


def test_broken_run_records_are_listed_as_unreadable(tmp_path):
    # Before: exit 2 on the first, or a traceback (AttributeError) for JSON of the wrong shape.
    study = tmp_path / "study"
    _good(study, "good-0", 0)
    _good(study, "good-1", 1)
    for name, content in BROKEN.items():
        (study / name).mkdir()
        (study / name / "run.json").write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "reports", str(study)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    text = (study / "RESULTS.md").read_text()
    n = len(BROKEN)
    assert f"{n + 2} run records: 2 used, {n} left out ({n} unreadable)" in text
    assert "60.5 ± 0.7 (n=2)" in text
    rows = {
        line.split("|")[1].strip(" `"): line for line in text.splitlines() if "unreadable |" in line
    }
    assert set(rows) == {f"{name}/run.json" for name in BROKEN}
    for name, reason in REASONS.items():
        assert reason.lower() in rows[f"{name}/run.json"].lower(), name
