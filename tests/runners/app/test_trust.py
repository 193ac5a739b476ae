"""Trust (issue 13, item 9): study and config files are code; a callback from outside the
project is pointed out."""

from __future__ import annotations

import logging

from hydra import compose, initialize_config_dir

from runners.app.callbacks import RedactSecretsCallback, foreign_callbacks
from tests.conftest import ROOT


def _hydra_config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_projects_own_callbacks_are_not_foreign():
    assert foreign_callbacks(_hydra_config()) == []
    assert foreign_callbacks(_hydra_config("ablation=dropblock_search")) == []


def test_a_callback_from_elsewhere_is_pointed_out(caplog):
    cfg = _hydra_config(
        "+hydra.callbacks.mine._target_=shutil.rmtree",
        "+hydra.callbacks.logged._target_=hydra.experimental.callbacks.LogJobReturnCallback",
    )
    assert foreign_callbacks(cfg) == ["mine: shutil.rmtree"]
    with caplog.at_level(logging.WARNING, logger="runners.app.callbacks"):
        RedactSecretsCallback().on_multirun_start(cfg)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("hydra.callbacks.mine: _target_ 'shutil.rmtree' is not one of")
    assert "Study and config files are code" in message
