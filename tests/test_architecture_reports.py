"""The shape of ``reports/``, read from its source with ``ast`` (nothing is imported or run).

Issue 14's rules for the package: no function over 60 lines, none taking more than 8
positional parameters or 12 in all (options beyond that are keyword-only or grouped in a small
dataclass), and of the harness ``reports`` imports only ``runners.core`` and the search
settings it summarises (``runners.search.settings``), function-level imports included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parent.parent / "reports"
MAX_LINES = 60
MAX_POSITIONAL = 8
MAX_PARAMETERS = 12
#: What of ``runners`` reports may import: a package (and everything below it) or one module.
ALLOWED_PACKAGES = ("runners.core",)
ALLOWED_MODULES = ("runners.search.settings",)


def _modules() -> list[Path]:
    return sorted(REPORTS.rglob("*.py"))


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPORTS.parent)}:{node.lineno}"


def function_problems(path: Path) -> list[str]:
    """Each function of ``path`` that is too long or takes too many parameters, described."""
    problems = []
    for fn in _functions(ast.parse(path.read_text(), str(path))):
        args = fn.args
        lines = fn.end_lineno - fn.lineno + 1  # from ``def`` to its last line
        positional = len(args.posonlyargs) + len(args.args)
        total = positional + len(args.kwonlyargs) + (args.vararg is not None)
        total += args.kwarg is not None
        if lines > MAX_LINES:
            problems.append(f"{_where(path, fn)} {fn.name}: {lines} lines > {MAX_LINES}")
        if positional > MAX_POSITIONAL:
            problems.append(
                f"{_where(path, fn)} {fn.name}: {positional} positional parameters > "
                f"{MAX_POSITIONAL}"
            )
        if total > MAX_PARAMETERS:
            problems.append(f"{_where(path, fn)} {fn.name}: {total} parameters > {MAX_PARAMETERS}")
    return problems


def allowed(module: str) -> bool:
    """Whether reports may import ``module`` (a dotted name)."""
    if module != "runners" and not module.startswith("runners."):
        return True  # not the harness (reports itself, the standard library, third parties)
    if module in ALLOWED_MODULES:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def _imported(node: ast.AST) -> list[str]:
    """The dotted names ``node`` imports: ``from a.b import c`` imports ``a.b`` or ``a.b.c``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        # ``from runners.core import record`` is allowed through ``runners.core``, and
        # ``from runners.search import settings`` through ``runners.search.settings``.
        if allowed(node.module):
            return [node.module]
        return [f"{node.module}.{alias.name}" for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None))
        in ("import_module", "__import__")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def import_problems(path: Path) -> list[str]:
    """Each import of ``path`` (at any depth) of a part of ``runners`` reports may not use."""
    return [
        f"{_where(path, node)} imports {name}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        for name in _imported(node)
        if not allowed(name)
    ]


def test_the_checks_read_the_package():
    functions = [fn for path in _modules() for fn in _functions(ast.parse(path.read_text()))]
    assert len(_modules()) >= 10 and len(functions) >= 50  # not vacuously green


@pytest.mark.parametrize(
    "source", ["from runners.search import settings", "import runners.core.record"]
)
def test_allowed_imports(source):
    assert all(allowed(name) for name in _imported(ast.parse(source).body[0]))


@pytest.mark.parametrize(
    "source",
    [
        "from runners.search import sweep",
        "from runners import search",
        "import runners.engine.train",
        "from runners.config.schema import PRIMARY_METRIC",
        "importlib.import_module('runners.tasks')",
    ],
)
def test_forbidden_imports(source):
    node = ast.parse(source).body[0]
    node = node.value if isinstance(node, ast.Expr) else node
    assert not all(allowed(name) for name in _imported(node))


def test_functions_are_small():
    problems = [p for path in _modules() for p in function_problems(path)]
    assert not problems, "\n".join(problems)


def test_reports_imports_only_core_and_search_settings():
    problems = [p for path in _modules() for p in import_problems(path)]
    assert not problems, "\n".join(problems)


def test_importing_reports_loads_no_other_part_of_runners():
    """The same rule at run time, through every import chain (``runners.search.settings``
    must stay as light as it is)."""
    modules = sorted(p.stem for p in REPORTS.glob("*.py") if p.stem != "__main__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('reports.' + name)\n"
        "print(' '.join(m for m in sys.modules if m == 'runners' or m.startswith('runners.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPORTS.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert loaded and all(allowed(m) or m in ("runners", "runners.search") for m in loaded), loaded
