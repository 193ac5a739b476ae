"""Scaling out on Hydra's launchers: joblib (local processes) and submitit (SLURM; local here)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from runners.core.record import load_record
from tests.conftest import ROOT, TINY, run_cli


@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        # submitit's local executor: the same job directories and records through another
        # plugin; slow (25 s on dev-cpu), joblib proves the launcher path in CI (make demo's)
        pytest.param(
            ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["joblib", "submitit_local"],
)
def test_two_job_multirun_on_a_launcher(tmp_path, data_cache, launcher):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", *launcher, "seed=0,1", *TINY, f"data.cache_dir={data_cache}",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [load_record(p) for p in sorted(sweep.rglob("run.json"))]
    assert [r.config["seed"] for r in records] == [0, 1]
    assert all(r.status == "completed" for r in records)
    # Same job directories as the basic launcher, so a rerun on any launcher skips them.
    assert sorted(p.parent.name for p in sweep.rglob("run.json")) == [
        "data.train_per_class=6,data.val_per_class=3,epochs=1,seed=0",
        "data.train_per_class=6,data.val_per_class=3,epochs=1,seed=1",
    ]
    text = (sweep / "RESULTS.md").read_text()
    assert "2 run records: 2 used, 0 left out" in text and "(n=2)" in text


def test_slurm_launcher_config_composes(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.submitit_folder.endswith(".submitit/%j")
