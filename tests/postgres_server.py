"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that need a real server.

Needs the server binaries (Debian: ``apt-get install postgresql``, which ``.ci/run`` installs) and
a driver (``pip install -e '.[postgres]'``); skips with the reason otherwise. ``initdb`` refuses
to run as root, so as root the server runs as Debian's ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["throwaway_postgres"]


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


@contextlib.contextmanager
def throwaway_postgres(password: str | None = None) -> Iterator[str]:
    """Start a cluster, yield its URL (``postgresql+psycopg://user@127.0.0.1:port/postgres``,
    never with the password), then stop and remove it. With ``password`` the server requires it
    (scram-sha-256); without, it trusts every local connection."""
    pytest.importorskip(
        "psycopg", reason="no PostgreSQL driver (psycopg 3): pip install -e '.[postgres]'"
    )
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    prefix: list[str] = []
    user = getpass.getuser()
    base = Path(tempfile.mkdtemp(prefix="optuna-pg-"))
    auth = ["--auth=trust"]
    if password is not None:
        (base / "pw").write_text(password + "\n")
        auth = ["--auth=scram-sha-256", f"--pwfile={base / 'pw'}"]
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        prefix, user = ["runuser", "-u", "postgres", "--"], "postgres"
        for path in (base, *base.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120)

    run(initdb, "-D", str(data), *auth, f"--username={user}", "--encoding=UTF8")
    (base / "pw").unlink(missing_ok=True)
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
