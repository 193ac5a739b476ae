"""Reports read files they did not write (issue 13, item 8): a broken run record is listed,
not fatal, and a storage named inside the directory is opened only if it lies inside it."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import optuna
import pytest

from reports.__main__ import main
from runners.core.study_settings import StudySettings
from tests.reports.reports_fixture import _config, _record

BROKEN = {
    "not-json": b"{not json",
    "an-array": b"[]",
    "null": b"null",
    "config-array": json.dumps({"schema_version": 2, "status": "completed", "config": []}).encode(),
    "batch-string": json.dumps(
        {"schema_version": 2, "status": "completed", "batch": "64"}
    ).encode(),
    "not-utf8": b'{"schema_version": 2, "status": "\xff\xfe"}',
    "deep": b"[" * 100_000,
}
REASONS = {
    "not-json": "Expecting property name enclosed in double quotes",
    "an-array": "the file holds an array, not an object",
    "null": "the file holds null, not an object",
    "config-array": "config is an array, not an object",
    "batch-string": "batch is str '64'",
    "not-utf8": "utf-8",
    "deep": "recursion",
}


def _good(root: Path, name: str, seed: int) -> None:
    config = _config("classify", "tinyresnet", "none", 2, seed, 64)
    _record(config, {"top1": 60.0 + seed, "top5": 80.0, "loss": 1.0}).write(root / name)


def test_broken_run_records_are_listed_as_unreadable(tmp_path, capsys):
    # Before: exit 2 on the first, or a traceback (AttributeError) for JSON of the wrong shape.
    study = tmp_path / "study"
    _good(study, "good-0", 0)
    _good(study, "good-1", 1)
    for name, content in BROKEN.items():
        (study / name).mkdir()
        (study / name / "run.json").write_bytes(content)
    # A record that is a link to a file outside the directory is not read.
    _good(tmp_path / "outside", "job", 5)
    (study / "link").mkdir()
    (study / "link" / "run.json").symlink_to(tmp_path / "outside" / "job" / "run.json")
    assert main([str(study)]) == 0  # what `python -m reports STUDY` runs
    assert "Traceback" not in capsys.readouterr().err
    text = (study / "RESULTS.md").read_text()
    n = len(BROKEN) + 1
    assert f"{n + 2} run records: 2 used, {n} left out ({n} unreadable)" in text
    assert "60.5 ± 0.7 (n=2)" in text
    rows = {
        line.split("|")[1].strip(" `"): line for line in text.splitlines() if "unreadable |" in line
    }
    assert set(rows) == {f"{name}/run.json" for name in [*BROKEN, "link"]}
    assert (
        f"a link to {tmp_path / 'outside' / 'job' / 'run.json'}, outside" in rows["link/run.json"]
    )
    for name, reason in REASONS.items():
        assert reason.lower() in rows[f"{name}/run.json"].lower(), name


def _study_db(path: Path, name: str, job_dir: Path, value: float) -> None:
    """An Optuna study with one complete trial whose job directory is ``job_dir``."""
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{path}", direction="maximize")
    trial = study.ask({"p": optuna.distributions.FloatDistribution(0.0, 1.0)})
    trial.set_user_attr("job_dir", str(job_dir))
    trial.set_user_attr("overrides", [f"p={trial.params['p']}"])
    study.tell(trial, value)


def _study_dir(tmp_path: Path, storage: str) -> Path:
    study = tmp_path / "study"
    _good(study, "trial_0000", 0)
    StudySettings(study_name="s", storage=storage).write(study)
    return study


def test_a_storage_file_outside_the_study_dir_is_opened_only_when_given(tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # The outside trial's job dir holds a record of 7 epochs; the study's own trial_0000 has 2.
    _config_7 = _config("classify", "tinyresnet", "none", 7, 0, 64)
    _record(_config_7, {"top1": 1.0, "top5": 1.0, "loss": 1.0}).write(outside / "trial_0000")
    _study_db(outside / "evil.db", "s", outside / "trial_0000", 42.0)
    study = _study_dir(tmp_path, f"sqlite:///{outside / 'evil.db'}")

    assert main(["--no-plots", str(study)]) == 0
    err = capsys.readouterr().err
    assert "is not a file inside" in err and "pass it with --storage URL" in err
    assert not (study / "TRIALS.md").exists()
    assert (study / "RESULTS.md").is_file(), "the run records are still tabulated"

    assert main(["--no-plots", str(study), "--storage", f"sqlite:///{outside / 'evil.db'}"]) == 0
    trials = (study / "TRIALS.md").read_text()
    assert "| 0 | complete |" in trials and "| 42 | 2 | `trial_0000` |" in trials, trials


def test_a_copied_study_dir_uses_its_own_storage_file(tmp_path, capsys):
    # optuna_study.json names the SQLite file where the study was first run; the copy has its own.
    study = _study_dir(tmp_path, "sqlite:////nonexistent/original/optuna.db")
    _study_db(study / "optuna.db", "s", Path("/nonexistent/original/trial_0000"), 7.0)
    assert main(["--no-plots", str(study)]) == 0
    assert "| 0 | complete |" in (study / "TRIALS.md").read_text()


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            connections.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


def test_a_database_url_in_the_study_dir_is_never_connected_to(tmp_path, listener, capsys):
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install -e '.[postgres]'")
    port, connections = listener
    study = _study_dir(tmp_path, f"postgresql+psycopg://u@127.0.0.1:{port}/db")
    assert main(["--no-plots", str(study)]) == 0
    assert "pass it with --storage URL" in capsys.readouterr().err
    assert connections == [], "reports connected to a URL written in the study directory"
