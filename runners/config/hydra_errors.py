"""Hydra's and OmegaConf's composition errors, as the project's one-line :class:`ConfigError`.

Hydra prints these over several lines (the available options one per line, the config search
path, a hint about ``HYDRA_FULL_ERROR``) and OmegaConf appends ``full_key``/``object_type``
lines. A user needs the key, what is wrong with it, and what would be accepted; this module
keeps exactly that.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from runners.config import ConfigError
from runners.config.schema import OPTION_SCHEMAS

__all__ = ["config_error", "is_config_error"]


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _missing_option(err: MissingConfigException) -> ConfigError:
    missing = err.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    options = sorted(err.options or [])
    if not group or not options:
        return ConfigError(_first_line(str(err)))
    close = difflib.get_close_matches(option, options, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"{group} must be one of {', '.join(options)} (conf/{group}/), got {option!r}{hint}"
    )


def _option_of(schema: type | None) -> str:
    """`` in <group>=<option>`` when ``schema`` is an option's own (its keys are only that
    option's, :data:`~runners.config.schema.OPTION_SCHEMAS`); empty otherwise."""
    for group, schemas in OPTION_SCHEMAS.items():
        for name, option in schemas.items():
            if option is schema:
                return f" in {group}={name}"
    return ""


def _owners(key: str | None) -> str:
    """`` (a key of regularizer=cbn, dropblock_cbn)`` when ``key`` is another regularizer's
    (each regularizer's config holds only its own keys; ``regularizers.registry``)."""
    section, _, name = (key or "").partition(".")
    if section != "regularizer" or not name or "." in name:
        return ""
    from regularizers import registry

    owners = [spec.name for spec in registry.specs() if name in spec.keys]
    return f" (a key of regularizer={', '.join(owners)})" if owners else ""


def _omegaconf(err: OmegaConfBaseException, override: str | None) -> ConfigError:
    key = getattr(err, "full_key", None)
    message = _first_line(getattr(err, "msg", None) or str(err))
    where = f" (override {override!r})" if override else ""
    if "is not in struct" in message or "not in '" in message:
        option = _option_of(getattr(err, "object_type", None))
        return ConfigError(
            f"{key}: no such key{option}{where}{_owners(key)}; "
            "`python run.py --cfg job` lists the keys"
        )
    return ConfigError(f"{key}: {message}{where}" if key else f"{message}{where}")


def _config_error_inside(err: BaseException) -> ConfigError | None:
    """The project's :class:`ConfigError` that ``err`` was raised from, if any."""
    seen = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _other_sweeper(err: BaseException, overrides: Sequence[str]) -> ConfigError | None:
    """``seeds=auto`` with a study that configures another sweeper (an Optuna search): its
    ``hydra.sweeper.*`` keys are not the seeds sweeper's."""
    if not any(o.split("=", 1)[0] == "seeds" for o in overrides):
        return None
    seen = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        key = str(getattr(current, "full_key", None) or "")
        if key.startswith("hydra.sweeper."):
            return ConfigError(
                f"seeds=auto runs a grid study (key=a,b,...) with its own sweeper, but the study "
                f"configures another one ({key}: an Optuna search chooses its own trials); run "
                "it without seeds=auto"
            )
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_config_error(err: BaseException) -> bool:
    """Whether ``err`` is about the config: the project's, Hydra's or OmegaConf's error type,
    or anything raised from inside Hydra's own package (it parses the command line)."""
    if isinstance(err, ConfigError | HydraException | OmegaConfBaseException):
        return True
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "hydra" in Path(tb.tb_frame.f_code.co_filename).parts


def config_error(err: BaseException, overrides: Sequence[str] = ()) -> ConfigError:
    """``err``, raised while composing the config from ``overrides``, as one :class:`ConfigError`.

    Hydra and OmegaConf errors name their key; anything else Hydra lets through (a plain
    ``ValueError`` for ``data=0``, say) is shown with the overrides it came from.
    """
    if isinstance(err, ConfigError):
        return err
    inner = _config_error_inside(err)
    if inner is not None:  # raised by a resolver (runners.config.paths), wrapped by OmegaConf
        return inner
    if isinstance(err, MissingConfigException):
        return _missing_option(err)
    other_sweeper = _other_sweeper(err, overrides)
    if other_sweeper is not None:
        return other_sweeper
    if isinstance(err, OverrideParseException):
        return ConfigError(f"cannot parse an override: {_first_line(str(err))}")
    text = _first_line(str(err))
    if text.startswith("Could not append to config"):
        key = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else "the key"
        return ConfigError(f"{key} is already in the config: set it without '+' ({key}=...)")
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException):
        marker = "Error merging override "
        override = text[len(marker) :] if text.startswith(marker) else None
        return _omegaconf(cause, override)
    if isinstance(err, OmegaConfBaseException):
        return _omegaconf(err, None)
    shown = f" (overrides: {' '.join(overrides)})" if overrides else ""
    return ConfigError(f"{_first_line(str(err)) or type(err).__name__}{shown}")
