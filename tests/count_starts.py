"""Count the Python processes the tests start (``-p tests.count_starts``): a measuring aid.

Each start of ``sys.executable`` through ``subprocess`` (``run_cli``, ``Popen``, torchrun) is
appended, one line ``<kind>\t<test id>``, to the file named by ``COUNT_STARTS_FILE``::

    COUNT_STARTS_FILE=/tmp/starts.txt python -m pytest -p tests.count_starts tests/...
    cut -f1 /tmp/starts.txt | sort | uniq -c

Kinds: ``run.py``, ``torchrun``, ``-m reports``, ``-m models``, ``other``. Without the variable
the plugin does nothing. Not loaded by default (docs/BENCHMARKS.md, issue 14).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_current = {"test": "(collection)"}


def _kind(args: object) -> str | None:
    argv = args.split() if isinstance(args, str) else [str(a) for a in args]
    if not any(sys.executable in a for a in argv):
        return None
    if "torch.distributed.run" in argv:
        return "torchrun"
    if any(a.endswith("run.py") for a in argv):
        return "run.py"
    for module in ("reports", "models"):
        if f"-m {module}" in " ".join(argv):
            return f"-m {module}"
    return "other"


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("COUNT_STARTS_FILE")
    if not path:
        return
    real_init = subprocess.Popen.__init__

    def counting_init(self, args, *rest, **kwargs):
        kind = _kind(args)
        if kind is not None:
            with open(path, "a", encoding="utf-8") as out:
                out.write(f"{kind}\t{_current['test']}\n")
        real_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = counting_init


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["test"] = item.nodeid
