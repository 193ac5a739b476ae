"""Function size limits of issue 14, read from the source with ``ast`` (nothing is imported).

Every function (methods and nested functions included) in ``runners/config/``,
``runners/data/synthetic_det.py`` and ``runners/search/sweep.py`` is at most 60 lines long, from
its ``def`` line to its last line, and takes at most 8 positional parameters and 12 in all
(``self``/``cls`` and ``*args``/``**kwargs`` counted). Options beyond that are keyword-only or
grouped in a small dataclass.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = sorted(
    [
        *(ROOT / "runners" / "config").glob("*.py"),
        ROOT / "runners" / "data" / "synthetic_det.py",
        ROOT / "runners" / "search" / "sweep.py",
    ]
)
MAX_LINES = 60
MAX_POSITIONAL = 8
MAX_PARAMETERS = 12


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """Positional parameters and all parameters of ``node``."""
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    total = positional + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)
    return positional, total


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"


def test_the_checked_files_exist():
    assert all(path.is_file() for path in CHECKED)
    assert ROOT / "runners" / "config" / "rules.py" in CHECKED


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_60_lines(path):
    long = [
        f"{_where(path, node)}: {node.end_lineno - node.lineno + 1} lines"
        for node in _functions(path)
        if node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, f"functions over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_takes_too_many_parameters(path):
    wide = []
    for node in _functions(path):
        positional, total = _parameters(node)
        if positional > MAX_POSITIONAL or total > MAX_PARAMETERS:
            wide.append(f"{_where(path, node)}: {positional} positional, {total} in all")
    assert not wide, (
        f"functions over {MAX_POSITIONAL} positional or {MAX_PARAMETERS} parameters: {wide}"
    )


def test_the_scan_sees_long_and_wide_functions():
    """The scan itself: a 61-line function and one with 9 positional parameters are caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    source = (
        f"def long():\n{body}\n    return 0\n\ndef wide(a, b, c, d, e, f, g, h, i, *, j): ...\n"
    )
    tree = ast.parse(source)
    long, wide = (n for n in tree.body if isinstance(n, ast.FunctionDef))
    assert long.end_lineno - long.lineno + 1 == 61
    assert _parameters(wide) == (9, 10)
