"""Names that become paths: the study's name and a multirun job's directory name.

A study is swept into ``multirun/<study>/`` and each job into one directory below it, named
after the job's overrides (``batch=32,regularizer=dropout,seed=0``), so the same command always
lands in the same place. Hydra builds that name (``hydra.job.override_dirname``) by joining the
overrides as typed, so a value with ``/`` (``data.root=/data/x``) nests the job, and one with
``..`` (``backbone.cfg=../x.cfg``) moves it out of the study directory, where the study's
``RESULTS.md`` cannot find it. Here:

- :func:`plain_name` accepts a study name only when it is one directory name
  (``[A-Za-z0-9][A-Za-z0-9._-]*``);
- :func:`job_dirname` builds Hydra's name with every item made safe: ``/``, ``\\`` and control
  characters become ``_`` and such an item gets an 8-digit hash of the original, so two values
  never share a directory (``data.root=/data/x`` -> ``data.root=_data_x-<hash>``); a name too
  long for the file system (255 bytes) is shortened the same way. An item that needs neither
  is kept exactly as Hydra writes it, so the directories of existing studies do not move.

Both are OmegaConf resolvers (``runners.config.register_configs``), used in
``conf/config.yaml``: ``multirun/${plain_name:study}`` and
``${job_dirname:${hydra.overrides.task},${hydra.job.config.override_dirname}}``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["NAME_MAX", "job_dirname", "override_key", "plain_name", "register_resolvers"]

#: Bytes in one file name on Linux, macOS and Windows file systems (NAME_MAX).
NAME_MAX = 255
#: When a job's name is too long, each item longer than this is shortened to this many bytes.
ITEM_MAX = 48
#: Characters a directory name cannot hold, or should not: separators and control characters.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]+")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PLAIN_MAX = 100


def plain_name(key: str, value: Any) -> str:
    """``value`` if it is a plain name (one directory name), else :class:`ConfigError`.

    Args:
        key: the config key, for the message (``study``).
        value: its value.

    Returns:
        ``value`` unchanged.
    """
    from runners.config import ConfigError

    text = str(value)
    if len(text) > _PLAIN_MAX or not _PLAIN.fullmatch(text):
        raise ConfigError(
            f"{key} must be a plain name (letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit, at most {_PLAIN_MAX} characters), got {text!r}"
        )
    return text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


_parser: Any = None


def override_key(line: str) -> str:
    """The key (or group) an override sets, as Hydra's ``exclude_keys`` compares it."""
    global _parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        if _parser is None:
            _parser = OverridesParser.create()
        return _parser.parse_override(line).key_or_group
    except Exception:  # Hydra has parsed every override already; this is only a fallback
        return line.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def job_dirname(
    overrides: Iterable[str],
    exclude_keys: Iterable[str] = (),
    item_sep: str = ",",
    kv_sep: str = "=",
) -> str:
    """Hydra's ``override_dirname`` of ``overrides``, as one safe directory name.

    The same as Hydra's (the overrides as typed, those in ``exclude_keys`` left out, sorted,
    joined with ``item_sep``, ``=`` written as ``kv_sep``) wherever that is already a single
    directory name of at most :data:`NAME_MAX` bytes. Otherwise an item holding ``/``, ``\\``
    or a control character has them replaced by ``_`` and a hash of the item appended; then,
    while the name is too long, items longer than :data:`ITEM_MAX` bytes are cut with a hash,
    and finally the whole name.

    Args:
        overrides: the job's task overrides (``hydra.overrides.task``).
        exclude_keys, item_sep, kv_sep: ``hydra.job.config.override_dirname``.

    Returns:
        A name with no path separator, never ``.`` or ``..`` (empty when there are no overrides,
        as with Hydra: the job then runs in the study directory itself).
    """
    excluded = set(exclude_keys)
    lines = sorted(line for line in overrides if override_key(line) not in excluded)
    items = []  # (safe text, whether it was changed, the original line)
    for line in lines:
        text = line.replace("=", kv_sep)
        safe = _UNSAFE.sub("_", text)
        items.append((safe, safe != text, line))

    def joined(cap: int | None) -> str:
        parts = []
        for safe, changed, line in items:
            if cap is not None and _size(safe) > cap:
                parts.append(f"{_truncate(safe, cap - 9)}-{_digest(line)}")
            else:
                parts.append(f"{safe}-{_digest(line)}" if changed else safe)
        return _UNSAFE.sub("_", item_sep).join(parts)

    name = joined(None)
    if _size(name) > NAME_MAX:
        name = joined(ITEM_MAX)
    if _size(name) > NAME_MAX:
        name = f"{_truncate(name, NAME_MAX - 9)}-{_digest(item_sep.join(lines))}"
    if name in (".", ".."):  # not reachable from real overrides (each has a key); kept safe
        name = f"_{name}-{_digest(name)}"
    return name


def _job_dirname_resolver(overrides: Any, options: Any) -> str:
    from omegaconf import OmegaConf

    # Resolved, as Hydra's ``${hydra.job.override_dirname}`` is when it names the directory
    # (an override ``seed=${oc.env:SEED}`` gives ``seed=3``).
    lines = OmegaConf.to_container(overrides, resolve=True) if overrides is not None else []
    opts = OmegaConf.to_container(options, resolve=True) if options is not None else {}
    return job_dirname(
        [str(line) for line in lines],
        exclude_keys=opts.get("exclude_keys") or (),
        item_sep=str(opts.get("item_sep", ",")),
        kv_sep=str(opts.get("kv_sep", "=")),
    )


def _plain_name_resolver(key: str, *, _root_: Any) -> str:
    from omegaconf import OmegaConf

    return plain_name(key, OmegaConf.select(_root_, key))


def register_resolvers() -> None:
    """Register ``plain_name`` and ``job_dirname`` with OmegaConf (once per process)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("plain_name"):
        OmegaConf.register_new_resolver("plain_name", _plain_name_resolver)
    if not OmegaConf.has_resolver("job_dirname"):
        OmegaConf.register_new_resolver("job_dirname", _job_dirname_resolver)
