"""``bench/gpu.py`` (issue 17) on the CPU, so the GPU check cannot rot before a GPU runs it.

The whole ``--dry-run`` starts two ``run.py`` jobs and takes about two minutes on dev-cpu, and
the torchrun section (two gloo processes here) over one, so those tests are ``slow``; the others
run the cheap sections in this process (the Triton kernel under ``TRITON_INTERPRET=1``, set by
``tests/conftest.py``) and the rules of the table, in about 20 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (CPU-only torch build)")

from bench import dropblock as db_bench
from bench import gpu

ROOT = Path(__file__).resolve().parents[2]
#: Rows of the kernel section: 3 dtypes x 2 layouts, the odd map, seed / saved, 2 fractions.
KERNEL_ROWS = 10


def _rows(table: str) -> list[dict[str, str]]:
    """The table's body rows as dicts (cells split on unescaped ``|``)."""
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    keys = ("section", "check", "measured", "target", "result")
    return [
        dict(zip(keys, re.split(r"(?<!\\)\|", line.strip("| \n")), strict=True)) for line in lines
    ]


def _clean(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v.strip() for k, v in row.items()} for row in rows]


@pytest.mark.slow
def test_dry_run_has_every_section_and_passes_its_correctness_checks(tmp_path):
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert time.monotonic() - start < 300, "the dry run must stay a quick check"
    rows = _clean(_rows(result.stdout))
    assert {r["section"] for r in rows} == {*gpu.SECTIONS, "budget"}
    correctness = [r for r in rows if r["section"] in ("kernel", "e2e")]
    assert len(correctness) == KERNEL_ROWS + 2
    assert all(r["result"] == "PASS" for r in correctness), correctness
    assert all("completed" in r["measured"] for r in rows if r["section"] == "e2e")
    skipped = [r for r in rows if r["result"].startswith("skipped")]
    assert [r["section"] for r in skipped] == ["torchrun"]
    assert skipped[0]["result"] == "skipped: no CUDA (dry run on the CPU)"
    assert not [r for r in rows if r["result"] in ("ERROR", "FAIL")]
    # The files hold the same table, and the JSON the same rows with the raw numbers.
    assert (tmp_path / "gpu-check.md").read_text().strip() in result.stdout
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [r["result"] for r in report["rows"]] == [r["result"] for r in rows]
    assert {"kernel", "layers", "cbn", "resnet50", "e2e"} <= set(report["raw"])
    jobs = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert jobs == ["classify.log", "classify.run.json", "detect.log", "detect.run.json"]


def test_kernel_cbn_and_torchrun_sections_in_process(tmp_path, capsys):
    code = gpu.main(
        [
            "--dry-run",
            "--only",
            "kernel",
            "--only",
            "cbn",
            "--only",
            "torchrun",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _clean(_rows(out))
    kernel = [r for r in rows if r["section"] == "kernel"]
    assert len(kernel) == KERNEL_ROWS
    assert all(r["result"] == "PASS" for r in kernel), kernel
    # fp32 and fp16 are exact under the interpreter; bf16 within one ulp (its cast truncates).
    assert all(r["measured"].startswith("exact") for r in kernel[:6] if "bf16" not in r["check"])
    cbn = [r for r in rows if r["section"] == "cbn"]
    assert len(cbn) == 2 and all("memory not measured (CPU)" in r["measured"] for r in cbn)
    assert all(r["result"].endswith("(dry run)") for r in cbn), "no verdict passes as a measurement"
    assert [r["result"] for r in rows if r["section"] == "torchrun"] == [
        "skipped: no CUDA (dry run on the CPU)"
    ]
    assert rows[-1]["section"] == "budget"
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["environment"]["triton_interpret"] == "1"
    assert len(report["raw"]["kernel"]["fractions"]) == 2


def test_a_crashing_section_is_a_row_and_the_next_section_still_runs(tmp_path, capsys, monkeypatch):
    def crash(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(gpu.RUNNERS, "cbn", crash)
    code = gpu.main(["--dry-run", "--only", "cbn", "--only", "torchrun"])
    rows = _clean(_rows(capsys.readouterr().out))
    assert code == 1
    assert rows[0] == {
        "section": "cbn",
        "check": "section ran",
        "measured": "crashed: RuntimeError: boom",
        "target": "no error",
        "result": "ERROR",
    }
    assert rows[1]["section"] == "torchrun"


def test_only_correctness_failures_and_crashes_set_the_exit_status():
    row = gpu.Row
    slow = row("layers", "fused / x * 1.0", "2.00x", "<= 1.5x", "FAIL", "perf")
    wrong = row("kernel", "fused == reference", "differ", "identical", "FAIL", "correctness")
    crash = row("resnet50", "section ran", "crashed: E", "no error", "ERROR", "error")
    skipped = row("torchrun", "torchrun", "not run", "2 GPUs", "skipped: 1 GPU", "skipped")
    assert gpu.failed([slow, skipped]) == []
    assert gpu.failed([slow, wrong, crash]) == [wrong, crash]


def test_budget_shares_the_time_by_caps_and_passes_on_what_a_section_leaves():
    budget = gpu.Budget(100.0, ("kernel", "cbn"))  # caps 50 and 30
    first = budget.section("kernel") - time.monotonic()
    assert first == pytest.approx(100 * 50 / 80, abs=1.0)
    budget.spent["kernel"] = 1.0
    assert budget.section("cbn") - time.monotonic() == pytest.approx(100, abs=1.0)


def test_timing_stops_at_the_deadline_after_one_sample():
    calls = []
    timing = db_bench.measure_ms(
        lambda: calls.append(1), torch.device("cpu"), 5, 100, deadline=time.monotonic()
    )
    assert (timing.samples, timing.wanted, timing.cut) == (1, 100, True)
    assert len(calls) == 1, "warm-up is skipped too once the deadline has passed"
    assert "1 of 100 samples" in gpu._cut(timing)


def test_layer_rows_judge_each_target_and_a_failed_peer_is_no_crash():
    ctx = gpu.Context(torch.device("cpu"), gpu.GPU_PLAN, dry_run=False, interpreted=False)
    shape = (256, 1024, 14, 14)
    times = {
        gpu.X1: db_bench.Timing(0.2, 50, 50),
        gpu.FUSED: db_bench.Timing(0.25, 50, 50),
        gpu.TIMM_SHARED: db_bench.Timing(0.45, 50, 50),
        gpu.TIMM_CHANNEL: "RuntimeError: no kernel image",
        gpu.TORCHVISION: db_bench.Timing(1.0, 7, 50),
    }
    rows = gpu._layer_rows(ctx, shape, "fp32", times, torchvision_shape=shape)
    results = {r.check.split(",")[0]: (r.result, r.kind) for r in rows}
    assert results == {
        "fwd+bwd ms": ("measured", "info"),
        "fused / x * 1.0": ("PASS", "perf"),  # 1.25x <= 1.5x
        "fused / timm shared mask": ("PASS", "perf"),
        "fused / timm per-channel": ("skipped: peer failed", "skipped"),
        "torchvision / fused": ("FAIL", "perf"),  # 4x < 5x
    }
    assert rows[-1].measured == "4.00x (1.000 / 0.250 ms) [budget: 7 of 50 samples]"
    assert gpu.failed(rows) == []
    times[gpu.FUSED] = "RuntimeError: kernel failed"
    assert gpu.failed(gpu._layer_rows(ctx, shape, "fp32", times, shape)), "our kernel failing is"


@pytest.mark.slow
def test_torchrun_section_compares_with_the_single_process_record(tmp_path, monkeypatch):
    # No two GPUs here: the same section on gloo (the dry plan's jobs run on device=cpu).
    monkeypatch.setattr(gpu.torch.cuda, "device_count", lambda: 2)
    ctx = gpu.Context(torch.device("cpu"), gpu.DRY_PLAN, dry_run=True, interpreted=True)
    ctx.raw["workdir"] = str(tmp_path)
    ctx.deadline = time.monotonic() + 300
    single = gpu._job_command(gpu.DRY_PLAN.classify, tmp_path / "classify", tmp_path / "data")
    started = {"classify": gpu._start(single, tmp_path / "classify.log")}
    assert gpu._wait(started, ctx.deadline)["classify"][0] is None
    [row] = gpu.section_torchrun(ctx)
    assert row.result == "PASS", row
    assert "world size 2" in row.measured and row.measured.endswith("same keys: True")
