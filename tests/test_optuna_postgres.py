"""Two worker processes on one Optuna study in a real PostgreSQL server, started on loopback.

Needs the server binaries (Debian: ``apt-get install postgresql``) and a driver
(``pip install -e '.[postgres]'``); skips with the reason otherwise. SQLite stays the default.
"""

from __future__ import annotations

import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_optuna_sweep import TINY_CLI, TWO_PARAMS


def _server_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), stopped and removed after."""
    pytest.importorskip(
        "psycopg", reason="no PostgreSQL driver (psycopg 3): pip install -e '.[postgres]'"
    )
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    # initdb refuses to run as root; as root, run the server as Debian's `postgres` user.
    prefix: list[str] = []
    user = getpass.getuser()
    base = Path(tempfile.mkdtemp(prefix="optuna-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        prefix, user = ["runuser", "-u", "postgres", "--"], "postgres"
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120)

    run(initdb, "-D", str(data), "--auth=trust", f"--username={user}", "--encoding=UTF8")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start")
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


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
