"""Two worker processes on one Optuna study in a real PostgreSQL server, started on loopback.

Needs the server binaries (Debian: ``apt-get install postgresql``) and a driver
(``pip install -e '.[postgres]'``); skips with the reason otherwise. SQLite stays the default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.postgres_server import throwaway_postgres
from tests.runners.search.test_optuna_sweep import TINY_CLI, TWO_PARAMS


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), stopped and removed after."""
    with throwaway_postgres() as url:
        yield url


def test_two_workers_share_a_study_on_postgres(tmp_path, data_cache, postgres_url):
    import optuna
    from optuna.trial import TrialState

    study_dir = tmp_path / "pg"
    command = [
        sys.executable, str(ROOT / "run.py"), "-m", "ablation=dropblock_search", "epochs=1",
        *TINY_CLI, "logger=none", *TWO_PARAMS, f"data.cache_dir={data_cache}",
        f"hydra.sweep.dir={study_dir}", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner.name=none", f"hydra.sweeper.storage={postgres_url}",
    ]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    assert not (study_dir / "optuna.db").exists(), "no SQLite file when a URL is given"
    study = optuna.load_study(study_name="dropblock_search", storage=postgres_url)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert len({t.user_attrs["worker"] for t in complete}) == 2, "both processes ran trials"
    assert (study_dir / "TRIALS.md").is_file()
