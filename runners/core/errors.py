"""The harness's own errors, and what each means for a run (docs/ROBUSTNESS.md, exit status).

- :class:`ConfigError`: the command is wrong (a key, a value, a data file checked up front):
  one ``error:`` line, exit 2, nothing recorded.
- :class:`DataError`: a data file found unusable during training (an unreadable image): the job
  fails with one line naming the file (``run_status`` ``failed``), the sweep goes on.

Others live with their concept and carry their run status the same way:
``runners.engine.divergence.DivergedError`` (``diverged``), ``runners.search.trial.PrunedByOptuna``
(``pruned``), ``runners.core.job_lock.JobLocked`` (left to another process).
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError"]


class ConfigError(ValueError):
    """A config value breaks a rule. The message names the key, the rule and the value."""


class DataError(ValueError):
    """A data file cannot be used; the message starts with its path."""

    run_status = "failed"

    @staticmethod
    def one_line(err: BaseException) -> str:
        """The message as one line, also when a DataLoader worker re-raised it.

        A worker's error comes back with the worker's traceback in its message; the last line
        is the original ``...DataError: <path>: ...``.
        """
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        last = lines[-1] if lines else type(err).__name__
        return last.split("DataError: ", 1)[-1]
