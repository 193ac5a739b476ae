"""seeds=auto's decisions (``runners.seeds``) on records made here: which cells get seeds, and
why the rounds stop. The CLI runs are in tests/cli/test_seeds_auto.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from reports.analysis import SETTING_KEYS
from reports.collect import runs_table
from reports.options import ReportOptions
from reports.seeds_note import seeds_section
from runners.config import ConfigError
from runners.config.rules import validate
from runners.core.record import CodeVersion, RunRecord
from runners.core.seed_rounds import SEED_ROUNDS_NAME, SeedRounds, read_seed_rounds
from runners.seeds.decide import SeedLimits, cell_of_run, halfwidth, open_comparisons, plan_round
from runners.seeds.grid import parse_grid, seed_sequence

OPTIONS = ReportOptions(metrics=["top1"], plots=False)
#: Top-1 per seed: dropout is the baseline plus exactly 1 (no spread: settled at any target);
#: dropblock differs from it by a noisy amount (an open comparison at a small target).
BASE = {0: 50.0, 1: 55.0, 2: 52.0}
DROPOUT = {s: v + 1.0 for s, v in BASE.items()}
DROPBLOCK = {0: 51.0, 1: 54.0, 2: 55.0}


def _record(regularizer: str, seed: int, top1: float, subdivisions: int = 1) -> RunRecord:
    config = {
        "task": {"name": "classify"}, "data": {"name": "synthetic"},
        "backbone": {"name": "tinyresnet"}, "regularizer": {"name": regularizer},
        "epochs": 1, "seed": seed,
    }  # fmt: skip
    return RunRecord(
        status="completed", config=config, final={"top1": top1}, batch=64,
        subdivisions=subdivisions, mini_batch=64 // subdivisions,
        job_dir=f"/s/regularizer={regularizer},seed={seed},subdivisions={subdivisions}",
        code_version=CodeVersion(commit="a" * 40, dirty=False),
    )  # fmt: skip


def _runs(arms: dict[str, dict[int, float]], seeds: int = 3) -> pd.DataFrame:
    records = [
        _record(name, seed, value)
        for name, values in arms.items()
        for seed, value in values.items()
        if seed < seeds
    ]
    return runs_table(records)


def _needing(runs: pd.DataFrame, target: float) -> set[str]:
    """The regularizers whose runs fall in a cell of an open comparison."""
    _, found = open_comparisons(runs, OPTIONS, target)
    wanted = {cell for c in found for cell in c.cells}
    return {
        row["regularizer"]
        for _, row in runs.iterrows()
        if cell_of_run(row, SETTING_KEYS, OPTIONS) in wanted
    }


def test_seeds_go_only_to_the_cells_of_open_comparisons() -> None:
    runs = _runs({"none": BASE, "dropout": DROPOUT, "dropblock": DROPBLOCK})
    metric, found = open_comparisons(runs, OPTIONS, target=1.0)
    assert metric == "top1"
    assert len(found) == 1 and "dropblock" in found[0].text.lower()
    assert _needing(runs, 1.0) == {"none", "dropblock"}  # dropout has no spread: settled


def test_a_comparison_within_the_target_is_settled() -> None:
    runs = _runs({"none": BASE, "dropout": DROPOUT, "dropblock": DROPBLOCK})
    _, found = open_comparisons(runs, OPTIONS, target=100.0)
    assert found == []
    plan = plan_round(set(), {}, [0, 1, 2], SeedLimits(target_halfwidth=100.0), 6, metric="top1")
    assert plan.stopped == "settled"
    assert plan.reason == "every comparison is conclusive or within ±100 points of top1"


def test_a_significant_comparison_needs_no_seeds_however_wide() -> None:
    clear = {s: v + 20.0 + s for s, v in BASE.items()}  # +20, +21, +22: survives Holm
    runs = _runs({"none": BASE, "dropblock": clear})
    assert open_comparisons(runs, OPTIONS, target=0.0)[1] == []


def test_one_seed_is_no_interval_and_always_open() -> None:
    runs = _runs({"none": BASE, "dropout": DROPOUT}, seeds=1)
    _, found = open_comparisons(runs, OPTIONS, target=50.0)
    assert len(found) == 1 and math.isinf(found[0].halfwidth)


def test_an_open_interaction_needs_its_four_cells() -> None:
    records = [_record("none", s, v, 1) for s, v in BASE.items()]
    records += [_record("none", s, v, 8) for s, v in BASE.items()]
    records += [_record("dropout", s, v, 1) for s, v in DROPOUT.items()]  # +1 at mini 64
    records += [_record("dropout", s, v, 8) for s, v in DROPBLOCK.items()]  # noisy at mini 8
    runs = runs_table(records)
    _, found = open_comparisons(runs, OPTIONS, target=0.5)
    interactions = [c for c in found if c.text.startswith("interaction")]
    assert len(interactions) == 1 and len(set(interactions[0].cells)) == 4
    assert len({cell for c in found for cell in c.cells}) == 4


def test_halfwidth_of_a_delta_without_interval() -> None:
    runs = _runs({"none": BASE, "dropout": DROPOUT})
    from reports.analysis import analyse

    (analysis,) = analyse(runs, OPTIONS, OPTIONS.checked_baseline())
    assert halfwidth(analysis.deltas[0].delta) == 0.0  # no spread


def test_the_next_round_brings_needing_cells_level_with_the_next_seeds() -> None:
    sequence = seed_sequence([0, 1], 6)
    assert sequence == [0, 1, 2, 3, 4, 5]
    plan = plan_round({"a", "b"}, {"a": 2, "b": 3, "c": 2}, sequence, SeedLimits(max_seeds=6), 7)
    assert plan.add == {"a": [2, 3], "b": [3]} and not plan.stopped


def test_it_stops_at_max_seeds() -> None:
    limits = SeedLimits(max_seeds=3)
    plan = plan_round({"a"}, {"a": 3, "b": 2}, [0, 1, 2], limits, 5, metric="top1", n_open=2)
    assert plan.stopped == "max_seeds" and not plan.add
    assert "report.max_seeds=3" in plan.reason and "2 comparisons" in plan.reason
    # a cell below the cap still grows, up to the cap only
    plan = plan_round({"a", "b"}, {"a": 3, "b": 2}, [0, 1, 2], limits, 5)
    assert plan.add == {"b": [2]}


def test_it_stops_at_the_job_budget() -> None:
    limits = SeedLimits(max_jobs=7)
    plan = plan_round({"a", "b"}, {"a": 2, "b": 2}, [0, 1, 2], limits, launched=6)
    assert plan.stopped == "max_jobs" and "report.max_jobs=7" in plan.reason
    assert "needs 2 jobs, 1 are left" in plan.reason
    assert plan_round({"a"}, {"a": 2}, [0, 1, 2], limits, launched=6).add == {"a": [2]}


def test_the_grid_takes_the_seeds_out() -> None:
    grid = parse_grid({"regularizer": "none,dropout", "seed": "3,5"}, ["subdivisions=1,8"], None)
    assert grid.seeds == [3, 5] and len(grid.cells) == 4
    assert all(not any(o.startswith("seed=") for o in cell) for cell in grid.cells)
    assert grid.job(grid.cells[0], 3)[-1] == "seed=3"
    assert parse_grid({"regularizer": "none,dropout"}, [], None).seeds == [0, 1, 2]
    with pytest.raises(ConfigError, match="seeds=auto runs a grid"):
        parse_grid({"regularizer.groups.3.p": "interval(0, 0.2)"}, [], None)
    with pytest.raises(ConfigError, match="different seeds"):
        parse_grid({}, ["seed=1,1"], None)


def test_the_rounds_file_round_trips_and_a_bad_one_is_a_line(tmp_path: Path) -> None:
    rounds = SeedRounds(
        metric="top1", target_halfwidth=1.0, max_seeds=4, max_jobs=None, cells=3,
        rounds=[{"a": [0, 1], "b": [0, 1], "c": [0, 1]}, {"a": [2], "b": [2]}],
        stopped="max_seeds", reason="report.max_seeds=4 reached", open=["x vs y"],
    )  # fmt: skip
    rounds.write(tmp_path)
    assert read_seed_rounds(tmp_path / SEED_ROUNDS_NAME) == rounds
    text = "\n".join(seeds_section(tmp_path))
    assert "in 2 rounds (2 -> 3 seeds in 2 of 3 cells); stopped because report.max_seeds=4" in text
    assert "- x vs y" in text
    for bad in ("{", "[]", json.dumps({"version": 1, "metric": "top1", "rounds": {}})):
        (tmp_path / SEED_ROUNDS_NAME).write_text(bad)
        with pytest.raises(ValueError):
            read_seed_rounds(tmp_path / SEED_ROUNDS_NAME)
        assert "cannot be read" in "\n".join(seeds_section(tmp_path))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("report.max_seeds=0", "report.max_seeds must be >= 1"),
        ("report.max_jobs=0", "report.max_jobs must be >= 1"),
        ("report.target_halfwidth=-1", "report.target_halfwidth must be"),
        ("report.seeds_per_round=0", "report.seeds_per_round must be >= 1"),
    ],
)
def test_the_keys_are_validated(make_cfg, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))
