"""Secrets (issue 13, item 6): no password, token or key given on the command line, in the
environment or in a storage URL appears in any file the harness, Hydra or W&B writes, in the
output, or in an error message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sqlalchemy.engine import make_url

from runners.core import redact as redact_module
from runners.core.record import load_record
from runners.core.redact import redact, split_password, with_password
from runners.core.study_settings import PASSWORD_ENV, StudySettings
from tests.conftest import ROOT, TINY, run_cli
from tests.postgres_server import throwaway_postgres

TINY_WANDB = [o for o in TINY if not o.startswith("logger=")]


def _files_holding(root: Path, *secrets: str) -> list[str]:
    """Every file under ``root`` (binary ones included: W&B's ``.wandb``) holding a secret."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- the redaction itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "hydra.sweeper.storage=postgresql+psycopg://optuna:pa55-w/rd!@db:5432/study",
            "hydra.sweeper.storage=postgresql+psycopg://optuna:***@db:5432/study",
        ),
        ("mysql+pymysql://u:p@h/db and more", "mysql+pymysql://u:***@h/db and more"),
        ("postgresql:/user:hunter2@host/db", "postgresql:/user:***@host/db"),
        ("+hydra.job.env_set.WANDB_API_KEY=abc", "+hydra.job.env_set.WANDB_API_KEY=***"),
        ("--api-key=abc --db.password=xyz", "--api-key=*** --db.password=***"),
        ("https://host/x?token=abc&b=1", "https://host/x?token=***&b=1"),
        # Interpolations are left as written (Hydra saves them unresolved), and so are URLs
        # without a password and words that only contain a secret word.
        ("postgresql://u:${oc.env:DB_PW}@h/db", "postgresql://u:${oc.env:DB_PW}@h/db"),
        ("password=${oc.env:DB_PW}", "password=${oc.env:DB_PW}"),
        ("postgresql+psycopg://optuna@db/study", "postgresql+psycopg://optuna@db/study"),
        ("max_tokens=5 tokenizer=bpe", "max_tokens=5 tokenizer=bpe"),
        ("http://host:8080/path", "http://host:8080/path"),
        # A message is prose: "KEY: text" is not a secret there (it is in YAML, below).
        ("MY_TOKEN: no such key", "MY_TOKEN: no such key"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


def test_redact_structured_files():
    text = 'env_set:\n  PGPASSWORD: s3cret\n  OTHER: 1\n{"api_key": "abc", "n": 1}\n'
    assert redact(text, structured=True) == (
        'env_set:\n  PGPASSWORD: ***\n  OTHER: 1\n{"api_key": "***", "n": 1}\n'
    )


def test_known_values_and_secret_environment_variables_are_redacted_anywhere(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefgh")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a name that only contains TOKEN
    monkeypatch.setattr(redact_module, "_known", set())
    redact_module.add_secrets_from_args(["+x.password='a,b c;d'", "y=1"])
    text = "seen hf_abcdefgh and a,b c;d but not false"
    assert redact(text) == "seen *** and *** but not false"


def test_the_real_configs_have_nothing_to_redact():
    # No false positives: Hydra's files of an ordinary job are never rewritten.
    for ablation in ("default", "dropblock_search"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                config_name="config", overrides=[f"ablation={ablation}"], return_hydra_config=True
            )
        text = OmegaConf.to_yaml(cfg)
        assert redact(text, structured=True) == text


def test_split_password_round_trip():
    url = "postgresql+psycopg://optuna:p%40ss:w0rd@db:5432/study"
    bare, password = split_password(url)
    assert bare == "postgresql+psycopg://optuna@db:5432/study" and password == "p@ss:w0rd"
    assert make_url(with_password(bare, password)) == make_url(url)
    assert split_password("sqlite:////x/optuna.db") == ("sqlite:////x/optuna.db", None)
    with pytest.raises(ValueError) as info:
        split_password("postgresql://u:hunter22@h:port/db")
    assert "hunter22" not in str(info.value) and "u:***@h" in str(info.value)


def test_settings_take_the_password_only_from_the_harness_variable(monkeypatch):
    with pytest.raises(ValueError, match="password_env must be null or"):
        StudySettings(study_name="s", storage="postgresql://u@h/db", password_env="HOME")
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    settings = StudySettings(
        study_name="s", storage="postgresql://u@h/db", password_env=PASSWORD_ENV
    )
    with pytest.raises(
        ValueError, match=f"needs its password in the environment variable {PASSWORD_ENV}"
    ):
        settings.open_storage()


# -- through the CLI --------------------------------------------------------------------------------


def test_secrets_on_the_command_line_and_in_the_environment_reach_no_file(tmp_path, data_cache):
    # Hydra copies every override into multirun.yaml and .hydra/*.yaml (env_copy copies the
    # variable's value), and W&B stored the command line in its metadata and .wandb file.
    token, pg, wandb_key = "hf_TOKENsecret4711", "pgENVsecret0815", "wk" + "7" * 38
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "seed=0", *TINY_WANDB, "logger=wandb", f"data.cache_dir={data_cache}",
        f"hydra.sweep.dir={sweep}", f"+hydra.job.env_set.HF_TOKEN={token}",
        "hydra.job.env_copy=[PGPASSWORD]",
        env={"PGPASSWORD": pg, "WANDB_API_KEY": wandb_key},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = [load_record(p) for p in sweep.rglob("run.json")]
    assert record.status == "completed"
    assert list(sweep.rglob("*.wandb")), "the W&B run was written"
    hydra_yaml = next(sweep.rglob(".hydra/hydra.yaml")).read_text()
    assert "HF_TOKEN: '***'" in hydra_yaml or "HF_TOKEN: ***" in hydra_yaml
    assert _files_holding(sweep, token, pg, wandb_key) == []
    for secret in (token, pg, wandb_key):
        assert secret not in result.stdout + result.stderr


def test_a_malformed_storage_url_is_one_line_without_its_password(tmp_path):
    study = tmp_path / "study"
    result = run_cli(
        "-m", "ablation=dropblock_search", *TINY, "hydra.sweeper.n_trials=1",
        f"hydra.sweep.dir={study}",
        "hydra.sweeper.storage=postgresql+psycopg://optuna:Hunter2secret@127.0.0.1:port/db",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert line == (
        "error: hydra.sweeper.storage: not a database URL SQLAlchemy can parse (ValueError): "
        "'postgresql+psycopg://optuna:***@127.0.0.1:port/db'"
    )
    assert "Hunter2secret" not in result.stdout
    assert not study.exists(), "nothing written"


# -- a real PostgreSQL server that requires the password -------------------------------------------


@pytest.fixture
def postgres_with_password() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 that authenticates with a password
    (scram-sha-256); yields (URL without the password, password)."""
    password = "Pg-s3cret_" + os.urandom(6).hex()
    with throwaway_postgres(password) as url:
        yield url, password


def test_a_password_in_the_storage_url_is_used_and_written_nowhere(
    tmp_path, data_cache, postgres_with_password, capsys
):
    bare, password = postgres_with_password
    url = bare.replace("@", f":{password}@", 1)
    study = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    result = run_cli(
        "-m", "ablation=dropblock_search", *TINY_WANDB, "logger=wandb",
        "regularizer.groups.3.p=0.025", "regularizer.groups.3.block_size=3",
        f"data.cache_dir={data_cache}", f"hydra.sweep.dir={study}", "hydra.sweeper.n_trials=1",
        f"hydra.sweeper.storage={url}", env={**env, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # The trial ran: its job opened the storage with the password it got from the environment.
    (record,) = [load_record(p) for p in study.glob("trial_*/run.json")]
    assert record.status == "completed"
    assert StudySettings.read(study).storage == bare
    assert ":***@127.0.0.1" in (study / "multirun.yaml").read_text()
    assert list(study.rglob("*.wandb")), "the W&B run was written"
    assert _files_holding(study, password) == []
    assert password not in result.stdout + result.stderr

    # Reports never connect to a URL read from the study directory; --storage opens it.
    from reports.__main__ import main

    (study / "TRIALS.md").unlink()
    assert main(["--no-plots", str(study)]) == 0
    assert "pass it with --storage URL" in capsys.readouterr().err
    assert not (study / "TRIALS.md").exists()
    assert main(["--no-plots", str(study), "--storage", url]) == 0
    assert "complete" in (study / "TRIALS.md").read_text()
    assert _files_holding(study, password) == []
    assert password not in "".join(capsys.readouterr())
