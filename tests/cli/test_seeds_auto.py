"""``python run.py -m ... seeds=auto`` through the real command, at a tiny budget.

At one epoch on the tiny synthetic set, DropBlock's linear schedule starts at p = 0, so its runs
give exactly the baseline's loss (every seed the same difference: no spread, settled), while
dropout's (p > 0) differ by a little, in both directions: an open comparison at a target of
0.0001 loss points. So seeds=auto adds seeds to ``none`` and ``dropout`` only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_COMMON, TINY_DATA, run_cli

GRID = ["regularizer=none,dropout,dropblock", "seed=0,1", "subdivisions=1"]
LIMITS = ["report.metrics=[loss]", "report.target_halfwidth=0.0001", "report.max_seeds=3"]


def _args(study: Path, data_cache: Path, *extra: str) -> list[str]:
    return [
        "-m", "seeds=auto", *GRID, *LIMITS, *TINY_COMMON, *TINY_DATA["synthetic"],
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={study}", *extra,
    ]  # fmt: skip


def _jobs(study: Path) -> dict[str, float]:
    """``regularizer,seed`` of every job directory with a record -> its record's mtime."""
    out = {}
    for record in study.glob("*/run.json"):
        parts = dict(p.split("=", 1) for p in record.parent.name.split(","))
        out[f"{parts['regularizer']},{parts['seed']}"] = record.stat().st_mtime_ns
    return out


def test_seeds_go_where_needed_and_a_rerun_runs_nothing(
    tmp_path: Path, data_cache: Path, cli_in_process
) -> None:
    study = tmp_path / "study"
    done = run_cli(*_args(study, data_cache))
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = _jobs(study)
    assert sorted(jobs) == [
        "dropblock,0", "dropblock,1", "dropout,0", "dropout,1", "dropout,2",
        "none,0", "none,1", "none,2",
    ]  # fmt: skip
    rounds = json.loads((study / "seeds_auto.json").read_text())
    assert rounds["stopped"] == "max_seeds" and len(rounds["rounds"]) == 2
    reason = rounds["reason"]
    assert "report.max_seeds=3" in reason
    assert f"seeds=auto: stopped after 2 round(s): {reason}" in done.stdout
    results = (study / "RESULTS.md").read_text()
    assert "in 2 rounds (2 -> 3 seeds in 2 of 3 cells); stopped because report.max_seeds=3" in (
        results
    )
    assert results.index("## Findings") < results.index("## Seeds") < results.index("\n## task=")

    # The same command again: every job is skipped, the same rounds and the same reason.
    again = cli_in_process(*_args(study, data_cache))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _jobs(study) == jobs
    assert json.loads((study / "seeds_auto.json").read_text()) == rounds

    # A budget of 7 jobs stops before the second round (it needs 2 more than the 6 of the first).
    budget = cli_in_process(*_args(study, data_cache, "report.max_jobs=7"))
    assert budget.returncode == 0, budget.stderr[-3000:]
    assert _jobs(study) == jobs
    rounds = json.loads((study / "seeds_auto.json").read_text())
    assert rounds["stopped"] == "max_jobs" and len(rounds["rounds"]) == 1
    assert "report.max_jobs=7: the next round needs 2 jobs, 1 are left" in rounds["reason"]
    assert "stopped because the job budget report.max_jobs=7" in (study / "RESULTS.md").read_text()

    # A target wider than every interval: the first round settles it, nothing is added.
    wide = cli_in_process(*_args(study, data_cache, "report.target_halfwidth=1000"))
    assert wide.returncode == 0, wide.stderr[-3000:]
    assert _jobs(study) == jobs
    rounds = json.loads((study / "seeds_auto.json").read_text())
    assert rounds["stopped"] == "settled" and len(rounds["rounds"]) == 1
    assert "every comparison is conclusive or within ±1000" in rounds["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # without -m: a single run has no rounds
        (["seeds=auto"], "seeds=auto runs a study in rounds of jobs: it needs a multirun"),
        # a search study configures its own sweeper
        (["-m", "ablation=dropblock_search", "seeds=auto"], "seeds=auto runs a grid study"),
        (["-m", "seeds=autox"], "seeds must be one of auto"),
        # a budget smaller than the grid itself
        (
            ["-m", "seeds=auto", "regularizer=none,dropout", "report.max_jobs=2"],
            "report.max_jobs=2 is less than the first round's 6 jobs (2 cells x 3 seeds)",
        ),
    ],
)
def test_seeds_auto_errors_in_one_line(
    cli_in_process, tmp_path: Path, args: list[str], message: str
) -> None:
    # hydra.run.dir: a single run makes its directory before it starts; not in the checkout
    done = cli_in_process(*args, *TINY_COMMON, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
