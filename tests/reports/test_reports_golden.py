"""RESULTS.md of the fixture study: the golden file, left-out runs, the CLI's options.

Regenerate the golden file after an intended change of layout, then review its diff:

    REGENERATE_GOLDEN=1 python -m pytest tests/reports/test_reports_golden.py
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

import pytest

from reports import (
    ReportOptions,
    collect_runs,
    left_out_reasons,
    render_results,
    write_results,
)
from tests.reports.reports_fixture import CLASSIFY, write_fixture

GOLDEN = Path(__file__).parent / "golden" / "RESULTS.md"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_fixture(tmp_path / "study")


def test_golden_results(study):
    out = write_results([study], out=study / "RESULTS.md", title="Study `fixture`")
    text = out.read_text()
    if os.environ.get("REGENERATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "layout changed: see this file's docstring to regenerate"
    links = re.findall(r"!\[[^]]*\]\((plots/[^)]+\.png)\)", text)
    assert len(links) == 2 * 2  # vs-batch and curves of each section's first metric (top1, AP)
    for link in links:
        assert (study / link).read_bytes().startswith(b"\x89PNG")


def test_left_out_runs_are_listed_and_not_averaged(study):
    runs = collect_runs([study])
    text = render_results(runs)
    left = text.split("## Runs left out")[1].split("##")[0]
    for status in ("failed", "diverged", "pruned", "running", "stale"):
        assert f"| `{status}` " not in left  # shown relative to nothing: full paths
        assert re.search(rf"left-out/{status}` \| {status} \|", left), status
    assert "code aaaaaaa, newest runs bbbbbbb" in left
    assert "RuntimeError: CUDA out of memory \\| retry" in left
    assert "16 used, 5 left out (1 failed, 1 diverged, 1 pruned, 1 running, 1 stale)" in text
    # The stale run's 99.0 would move dropblock@64 to n=4 and a mean of 79.8.
    assert "73.4 ± 0.5 (n=3)" in text and "(n=4)" not in text.split("## task=detect")[0]

    included = render_results(runs, ReportOptions(include_stale=True))
    with_stale = [*(CLASSIFY[("dropblock", 64, seed)] for seed in range(3)), 99.0]
    cell = f"{statistics.mean(with_stale):.1f} ± {statistics.stdev(with_stale):.1f} (n=4)"
    assert cell in included
    assert "| stale (included) | code aaaaaaa, newest runs bbbbbbb |" in included
    assert "17 used, 4 left out" in included


def test_newest_code_version_decides(tmp_path):
    from runners.core.record import CodeVersion, RunRecord

    def write(name, commit, started, dirty=False):
        RunRecord(
            status="completed",
            study="s",
            code_version=CodeVersion(commit=commit, dirty=dirty),
            started_at=started,
            config={"regularizer": {"name": "none"}},
            final={"top1": 1.0},
        ).write(tmp_path / name)

    write("a", "1" * 40, "2026-01-02T00:00:00+00:00")
    write("b", "2" * 40, "2026-01-01T00:00:00+00:00")  # older start, other commit: stale
    write("c", "1" * 40, "2026-01-01T12:00:00+00:00", dirty=True)  # same commit, edited: stale
    runs = collect_runs([tmp_path])
    names = runs["job_dir"].map(lambda p: Path(p).name)
    reasons = dict(zip(names, left_out_reasons(runs), strict=True))
    assert reasons == {"a": "", "b": "stale", "c": "stale"}


def test_cli_options(study, tmp_path, capsys):
    # In process: main() is what `python -m reports` runs (tests/reports/test_reports.py runs
    # the real command).
    from reports.__main__ import main

    out = tmp_path / "by-batch.md"
    status = main([
        str(study / "classify"), "--pivot", "batch,regularizer", "--baseline", "batch=64",
        "--metric", "top1", "--out", str(out), "--no-plots",
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text()
    assert "### Top-1 (%): difference from batch=64" in text and "### Top-5" not in text
    header = next(line for line in text.splitlines() if line.startswith("| batch "))
    assert "regularizer none" in header and "regularizer dropblock" in header
    assert not (tmp_path / "plots").exists()

    alias = ["--rows", "regularizer", "--columns", "batch", "--no-plots"]
    assert main([str(study / "classify"), *alias, "--out", str(tmp_path / "alias.md")]) == 0
    default = write_results([study / "classify"], out=tmp_path / "api.md", plots=False)
    assert (tmp_path / "alias.md").read_text() == default.read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--pivot", "regularizer"],
            "--pivot takes two different keys, ROWS,COLUMNS, got 'regularizer'",
        ),
        (["--pivot", "regulariser,batch"], "--pivot: unknown key 'regulariser'; keys: study,"),
        (["--baseline", "none"], "--baseline takes KEY=VALUE (e.g. regularizer=none), got 'none'"),
        (["--baseline", "seed=0"], "--baseline (must be a --pivot key): unknown key 'seed'"),
        (["--wandb", "project-only"], "--wandb takes ENTITY/PROJECT, got 'project-only'"),
    ],
)
def test_bad_input_is_one_clear_error(study, args, message, capsys):
    # In process, as above.
    from reports.__main__ import main

    assert main([*(["--no-plots", str(study)] if "--wandb" not in args else []), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_cli_bad_record_names_the_file(tmp_path, capsys):
    # Listed as unreadable, with the reason; the report is still written (issue 13).
    from reports.__main__ import main

    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "run.json").write_text("{not json")
    assert main(["--no-plots", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| `job/run.json` | unreadable | Expecting property name" in text


def test_no_records_is_an_error(tmp_path, capsys):
    from reports.__main__ import main

    assert main([str(tmp_path)]) == 2
    assert f"error: {tmp_path}: no run records (run.json) found" in capsys.readouterr().err
