"""Shared fixtures: the real config composed by Hydra, tiny budgets, per-test directories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# One intra-op thread per process (this one and every subprocess it starts): the test jobs are
# tiny, and several tests run two or more processes at once (Optuna workers, joblib, torchrun),
# where OpenMP threads spin-waiting for a core another process holds slow everything down many
# times over. Set before torch is imported, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

# Triton kernels run on the CPU under its interpreter. Triton reads the variable when a kernel is
# decorated, so it must be set before anything imports layers.drop_block_triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from runners.config import register_configs

ROOT = Path(__file__).resolve().parent.parent
#: Overrides that make a job take a second or two on a CPU.
TINY = [
    "epochs=1",
    "data.train_per_class=6",
    "data.val_per_class=3",
    "logger=none",
    "device=cpu",
]

register_configs()


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic-data cache shared by the whole session (generation is deterministic)."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture
def make_cfg(data_cache: Path) -> Callable[..., DictConfig]:
    """Compose the real ``conf/config.yaml`` with overrides (tiny budget first)."""

    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        base = [*TINY, f"data.cache_dir={data_cache}"] if tiny else []
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose(config_name="config", overrides=[*base, *overrides])

    return _make


def run_cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``python run.py ...`` in a subprocess, as a user would."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
