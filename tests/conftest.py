"""Shared fixtures: the real config composed by Hydra, tiny budgets, per-test directories."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Callable, Sequence
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
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from runners.config import register_configs

ROOT = Path(__file__).resolve().parent.parent
#: Overrides that make any job take a second or two on a CPU ...
TINY_COMMON = ["epochs=1", "logger=none", "device=cpu"]
#: ... and those of each generated data option: an option's config holds only its own keys, so
#: ``data.train_per_class`` is an error under ``data=synthetic_det`` or ``data=imagefolder``.
TINY_DATA = {
    "synthetic": ["data.train_per_class=6", "data.val_per_class=3"],
    "synthetic_det": ["data.train_images=8", "data.val_images=6"],
}
#: The data option of each task when ``data=`` is not given (``conf/config.yaml``, the task's YAML).
TASK_DEFAULT_DATA = {"classify": "synthetic", "detect": "synthetic_det"}
#: The default job (``task=classify data=synthetic``), tiny.
TINY = [*TINY_COMMON, *TINY_DATA["synthetic"]]

register_configs()


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic-data cache shared by the whole session (generation is deterministic)."""
    return tmp_path_factory.mktemp("data-cache")


def _chosen(group: str, overrides: Sequence[str], default: str) -> str:
    """The option of ``group`` that ``overrides`` choose (the last ``group=option``)."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{group}=")]
    return chosen[-1] if chosen else default


def tiny_overrides(overrides: Sequence[str], data_cache: Path) -> list[str]:
    """The tiny budget for the job ``overrides`` choose: the common keys, then those of its data
    option (with the shared cache) if it is generated."""
    task = _chosen("task", overrides, "classify")
    data = _chosen("data", overrides, TASK_DEFAULT_DATA.get(task, "synthetic"))
    if data not in TINY_DATA:
        return list(TINY_COMMON)
    return [*TINY_COMMON, *TINY_DATA[data], f"data.cache_dir={data_cache}"]


@pytest.fixture
def make_cfg(data_cache: Path) -> Callable[..., DictConfig]:
    """Compose the real ``conf/config.yaml`` with overrides (tiny budget first, for the data
    option they choose)."""

    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        base = tiny_overrides(overrides, data_cache) if tiny else []
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


@pytest.fixture
def cli_in_process(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess]:
    """``python run.py ARGS`` run in this process (``run.py`` as ``__main__``, so Hydra finds
    ``conf/`` beside it): the same code path as the command, without a Python and torch start
    (about 4 s each on dev-cpu). Returns what :func:`run_cli` returns (exit status, stdout,
    stderr). Hydra and the process-wide state a run touches (root logger, excepthook, the sweep
    outcome, environment) are restored afterwards. Tests of the process itself (signals, two
    processes, files Hydra writes for a new process) keep :func:`run_cli`.
    """
    from runners.app import sweep_outcome

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(sweep_outcome, "_current", sweep_outcome.SweepOutcome())
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setenv("WANDB_SILENT", "true")

    def _run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", [str(ROOT / "run.py"), *args])
        GlobalHydra.instance().clear()
        capfd.readouterr()
        code: int | str | None = 0
        try:
            runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code
        finally:
            GlobalHydra.instance().clear()
        out = capfd.readouterr()
        status = code if isinstance(code, int) else (0 if code is None else 1)
        return subprocess.CompletedProcess(["run.py", *args], status, out.out, out.err)

    return _run
