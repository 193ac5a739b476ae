"""Size and import rules for ``models/`` and ``layers/`` (issue 14), checked on the source (ast).

- No function over 60 lines (from its ``def`` line to its last line).
- No function with more than 8 positional parameters or 12 in all (``self`` counts); options
  beyond that are keyword-only or grouped in a dataclass. Triton kernels are excepted: functions
  decorated with ``triton.jit`` and everything in ``layers/drop_block_triton.py``.
- No module in ``layers/`` imports ``models``, at any level (function-level imports and
  ``importlib.import_module`` included): placement receives group maps as arguments.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "layers")
MAX_LINES = 60
MAX_POSITIONAL = 8
MAX_PARAMETERS = 12
#: Files whose functions are Triton kernels (their launch signature is the kernel's).
TRITON_FILES = {"layers/drop_block_triton.py"}


def _sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _is_triton_jit(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in ("triton.jit", "jit"):
            return True
    return False


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """(positional, all) parameters; ``*args`` and ``**kwargs`` count one each in all."""
    args = function.args
    positional = len(args.posonlyargs) + len(args.args)
    total = positional + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)
    return positional, total


def test_the_rules_see_the_sources():
    names = {_name(path) for path in _sources(*PACKAGES)}
    assert {"models/darknet/build.py", "layers/regularizer.py"} <= names
    assert names >= TRITON_FILES


def test_no_function_over_60_lines():
    long = [
        f"{_name(path)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for path in _sources(*PACKAGES)
        for f in _functions(path)
        if f.end_lineno - f.lineno + 1 > MAX_LINES
    ]
    assert not long, f"functions over {MAX_LINES} lines: {long}"


def test_no_function_with_too_many_parameters():
    wide = []
    for path in _sources(*PACKAGES):
        if _name(path) in TRITON_FILES:
            continue
        for function in _functions(path):
            if _is_triton_jit(function):
                continue
            positional, total = _parameters(function)
            if positional > MAX_POSITIONAL or total > MAX_PARAMETERS:
                wide.append(
                    f"{_name(path)}:{function.lineno} {function.name} ({positional}/{total})"
                )
    assert not wide, (
        f"functions with > {MAX_POSITIONAL} positional or > {MAX_PARAMETERS} parameters "
        f"(positional/all): {wide}"
    )


def _imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (a file under ``root``), at any
    depth; relative imports are resolved against the file's package."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # ``from . import x`` / ``from .. import models``: each name may be a module.
            found += [(node.lineno, f"{module}.{alias.name}".strip(".")) for alias in node.names]
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call) and node.args:
            callee = ast.unparse(node.func)
            first = node.args[0]
            if callee in ("importlib.import_module", "import_module", "__import__") and (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value))
    return found


def _is_models(module: str) -> bool:
    return module == "models" or module.startswith("models.")


@pytest.mark.parametrize(
    "source, imports_models",
    [
        ("import models\n", True),
        ("from models.registry import group_paths\n", True),
        ("def f():\n    from models import group_modules\n", True),
        ("import importlib\nimportlib.import_module('models.registry')\n", True),
        ("from ..models import registry\n", True),
        ("from .. import models\n", True),
        ("from layers.placement import place_in_groups\nimport torch\n", False),
        ("from . import placement\nfrom .schedule import ramp_factor\n", False),
    ],
)
def test_the_import_rule_sees_every_form(tmp_path, source, imports_models):
    file = tmp_path / "layers" / "probe.py"
    file.parent.mkdir()
    file.write_text(source)
    found = [module for _, module in _imported_modules(file, tmp_path)]
    assert any(_is_models(module) for module in found) is imports_models


def test_layers_never_import_models():
    offenders = [
        f"{_name(path)}:{line} imports {module}"
        for path in _sources("layers")
        for line, module in _imported_modules(path)
        if _is_models(module)
    ]
    assert not offenders, f"layers/ must not import models (pass group maps in): {offenders}"
