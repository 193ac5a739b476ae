"""Secrets kept out of every file, log line and message the harness or Hydra writes.

Where a secret can come from, and how it is kept out:

- a database URL with a password (``hydra.sweeper.storage=postgresql+psycopg://user:pw@host/db``):
  the Optuna sweeper strips the password before anything is saved, writes the URL as
  ``user:***@`` and hands the password to its jobs in an environment variable
  (``runners.search.sweep``); ``${oc.env:VAR}`` in the URL is never resolved into a file;
- any other override that Hydra copies into ``multirun.yaml`` and ``.hydra/*.yaml``
  (``hydra.job.env_set.WANDB_API_KEY=...``, ``hydra.job.env_copy=[PGPASSWORD]``): those files are
  rewritten through :func:`redact` as soon as Hydra has written them
  (``runners.app.callbacks.RedactSecretsCallback``);
- the command line that W&B would store (``args`` in its metadata and ``.wandb`` file): W&B's
  metadata collection is off (``runners.tracking.trackers``);
- error messages and tracebacks: the one-line ``error:`` of ``run.py`` and an unexpected
  traceback go through :func:`redact` (:func:`install_excepthook`); the command line's secrets
  are registered first (:func:`add_secrets_from_args`).

:func:`redact` replaces, in any text: the password of a URL (``scheme://user:pw@`` ->
``scheme://user:***@``); the value after a key that names a secret (``password``, ``passwd``,
``secret``, ``token``, ``api_key``, ``access_key``, ``private_key``, ``credentials``, in any
case and with any prefix: ``--api-key=x``, ``db.password=x``; in YAML and JSON files also
``PGPASSWORD: x`` and ``"token": "x"``); and every
occurrence of a known secret value of at least :data:`MIN_LITERAL` characters: the values of
environment variables named like secrets (``WANDB_API_KEY``, ``PGPASSWORD``, ``*_TOKEN``, ...)
and values given to :func:`add_secret`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from runners.core.atomic_write import atomic_write

__all__ = [
    "MIN_LITERAL",
    "REDACTED",
    "add_secret",
    "add_secrets_from_args",
    "install_excepthook",
    "redact",
    "redact_file",
    "split_password",
    "with_password",
]

REDACTED = "***"
#: Shorter known values are replaced only where a URL or a key shows they are secret (replacing
#: a short word everywhere would corrupt the text around it).
MIN_LITERAL = 6

_WORDS = r"(?:pass(?:word|wd)|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
#: ``scheme://user:password@`` (also ``scheme:user:password@``, a URL with its slashes lost);
#: ``${...}`` is an interpolation that Hydra leaves unresolved in its files, not a password.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*:/*[^\s:/@\"'`${}]*):(?!\$\{)(?!\*\*\*@)(?P<pw>[^\s@\"]+)@"
)


def _key_value(separators: str) -> re.Pattern[str]:
    """``<...secret word>``, a separator (optionally quoted), then the value."""
    return re.compile(
        rf"(?i)(?P<key>\b[\w.-]*{_WORDS})(?P<sep>[\"']?\s*[{separators}]\s*[\"']?)(?!\$\{{)"
        r"(?!\*\*\*)(?P<value>[^\s\"',;&}\]]+)"
    )


#: ``key=value`` (an override, a query string) anywhere; ``key: value`` only in files (YAML,
#: JSON), where it is structure: in a message it is prose (``MY_TOKEN: no such key``).
_KEY_EQUALS = _key_value("=")
_KEY_EQUALS_OR_COLON = _key_value("=:")
#: Environment variables whose values are secrets (matched on the end of the name).
_SECRET_ENV = re.compile(rf"(?i)(?:^|_|PG){_WORDS}$")

_known: set[str] = set()
_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Treat ``value`` as a secret from now on: :func:`redact` replaces it wherever it occurs."""
    if value:
        with _lock:
            _known.add(str(value))


def add_secrets_from_args(args: list[str]) -> None:
    """Register the secrets in command-line arguments: URL passwords, and the values of keys
    that name a secret (``+db.password=...``, ``hydra.job.env_set.WANDB_API_KEY=...``), whole,
    whatever characters they hold."""
    for arg in args:
        for match in _URL_PASSWORD.finditer(arg):
            add_secret(match["pw"])
        key, sep, value = arg.partition("=")
        if sep and re.search(rf"(?i){_WORDS}$", key):
            add_secret(value.strip("'\""))


def _secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if v and _SECRET_ENV.search(k)}
    with _lock:
        values |= _known
    # Longest first, so that a secret containing another is replaced whole.
    return sorted((v for v in values if len(v) >= MIN_LITERAL), key=len, reverse=True)


def redact(text: str, *, structured: bool = False) -> str:
    """``text`` with every password, token and key replaced by ``***`` (see the module doc).

    Args:
        text: a message, a log line, a file's content.
        structured: ``text`` is YAML or JSON: ``key: value`` is redacted too, not only
            ``key=value``.
    """
    if not text:
        return text
    for value in _secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    pattern = _KEY_EQUALS_OR_COLON if structured else _KEY_EQUALS
    return pattern.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)


def redact_file(path: str | os.PathLike[str]) -> bool:
    """Rewrite the text file ``path`` redacted (atomically, keeping its mode); whether it
    changed. A missing or unreadable file is left alone."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
        mode = target.stat().st_mode & 0o7777
    except (OSError, UnicodeDecodeError):
        return False
    clean = redact(text, structured=True)
    if clean == text:
        return False
    try:
        atomic_write(target, clean, mode=mode)
    except FileNotFoundError:  # the temporary was cleaned up by the job dir's holder: again
        atomic_write(target, clean, mode=mode)
    return True


def split_password(url: str) -> tuple[str, str | None]:
    """A database URL without its password, and the password (``None`` if it has none).

    A text without ``://`` or ``@`` comes back as it is. The password is registered with
    :func:`add_secret`.

    Raises:
        ValueError: SQLAlchemy cannot parse the URL (the message does not repeat it).
    """
    if "://" not in url or "@" not in url:
        return url, None
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as err:
        raise ValueError(
            f"not a database URL SQLAlchemy can parse ({type(err).__name__}): {redact(url)!r}"
        ) from None
    if parsed.password is None:
        return url, None
    add_secret(str(parsed.password))
    bare = parsed._replace(password=None)  # URL is a NamedTuple; set(password=None) keeps it
    return bare.render_as_string(hide_password=False), str(parsed.password)


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` put back (the inverse of :func:`split_password`)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _redacting_hook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(redact(text))
    sys.stderr.flush()


def install_excepthook() -> None:
    """Print an uncaught exception's traceback through :func:`redact`."""
    sys.excepthook = _redacting_hook
