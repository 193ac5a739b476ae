"""The project's shape, read from its source with ``ast`` (nothing is imported or run): issue 14.

- No function over 60 lines (``def`` to last line) and none taking more than 8 positional or 12
  parameters in all, in ``runners/``, ``layers/``, ``models/``, ``reports/`` (Triton kernels
  excepted: their launch signature is the kernel's).
- Imports, at any depth (function-level imports and ``importlib.import_module`` included):
  ``runners.core`` imports nothing of the project; ``runners.engine`` never imports
  ``runners.tasks``, ``runners.data``, ``runners.config`` or ``runners.tracking``;
  ``reports`` imports of the harness only ``runners.core`` and ``regularizers.registry`` (the
  rows' order and labels); ``layers`` never imports ``models`` or ``regularizers``;
  ``regularizers`` imports of the harness only ``layers`` and ``runners.core`` (never
  ``models``: the group map is passed in); only ``runners.dist`` imports ``torch.distributed``.
- ``runners.engine`` and ``runners.dist`` take no ``cfg``: their functions receive the values
  they need, computed by their callers.
- No import cycle between packages (``runners.<package>``, ``runners.<module>``, ``layers``,
  ``models``, ``regularizers``, ``reports``, ``hydra_plugins``, ``run``).

Each rule's checker is also tried on a probe that breaks it, so no rule passes vacuously.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("runners", "layers", "models", "regularizers", "reports", "hydra_plugins")
MAX_LINES, MAX_POSITIONAL, MAX_PARAMETERS = 60, 8, 12
#: Files whose functions are Triton kernels (their launch signature is the kernel's).
TRITON_FILES = {"layers/drop_block_triton.py"}
#: Which units may not import which (prefixes of dotted module names).
#: Every part of ``runners`` but ``runners.core``.
RUNNERS_BUT_CORE = (
    *(f"runners.{p}" for p in ("config", "dist", "data", "tasks", "engine", "tracking")),
    *("runners.search", "runners.seeds", "runners.app", "runners.job", "runners.rerun"),
    "runners.training",
)
FORBIDDEN = {
    "runners.core": ("runners", "layers", "models", "regularizers", "reports", "hydra_plugins"),
    "runners.engine": ("runners.tasks", "runners.data", "runners.config", "runners.tracking"),
    # Reports read run records; of the regularizers only the light registry (row order, labels).
    "reports": (*RUNNERS_BUT_CORE, "regularizers"),
    "layers": ("models", "regularizers"),
    # A regularizer is its schema, rules and layers: the group map comes in as arguments.
    "regularizers": (*RUNNERS_BUT_CORE, "models", "reports", "hydra_plugins"),
}
#: Packages whose functions take the values they need, never the whole config (``cfg``).
NO_CONFIG = ("runners.engine", "runners.dist")
#: Exceptions to :data:`FORBIDDEN`: a unit may import these although a rule names their prefix.
ALLOWED = {"reports": ("regularizers.registry",)}


def _sources() -> list[Path]:
    files = [p for package in PROJECT for p in (ROOT / package).rglob("*.py")]
    return sorted([*files, ROOT / "run.py"])


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    yield from (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _is_kernel(path: Path, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    decorators = {ast.unparse(getattr(d, "func", d)) for d in fn.decorator_list}
    return path.relative_to(ROOT).as_posix() in TRITON_FILES or bool(decorators & {"triton.jit"})


def size_problems(path: Path, tree: ast.AST) -> list[str]:
    """Functions of ``tree`` that are too long or take too many parameters."""
    problems = []
    for fn in _functions(tree):
        if _is_kernel(path, fn):
            continue
        args = fn.args
        positional = len(args.posonlyargs) + len(args.args)
        total = positional + len(args.kwonlyargs) + (args.vararg is not None)
        total += args.kwarg is not None
        lines = fn.end_lineno - fn.lineno + 1
        where = f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}"
        if lines > MAX_LINES:
            problems.append(f"{where}: {lines} lines > {MAX_LINES}")
        if positional > MAX_POSITIONAL or total > MAX_PARAMETERS:
            problems.append(f"{where}: {positional} positional, {total} parameters")
    return problems


def imported(tree: ast.AST) -> list[str]:
    """Every dotted name ``tree`` imports: ``from a import b`` counts as ``a`` and ``a.b``."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_problems(module: str, names: list[str]) -> list[str]:
    """Imports ``module`` may not make under :data:`FORBIDDEN` and the torch.distributed rule."""
    problems = []
    for unit, banned in FORBIDDEN.items():
        if _within(module, unit):
            allowed = (unit, *ALLOWED.get(unit, ()))
            problems += [
                f"{module} imports {n}"
                for n in names
                if any(_within(n, b) for b in banned) and not any(_within(n, a) for a in allowed)
            ]
    if not _within(module, "runners.dist"):
        problems += [f"{module} imports {n}" for n in names if _within(n, "torch.distributed")]
    return sorted(set(problems))


def unit_of(name: str) -> str | None:
    """The package an import belongs to, for the cycle check (None: not the project)."""
    parts = name.split(".")
    if parts[0] not in (*PROJECT, "run"):
        return None
    if parts[0] != "runners" or len(parts) == 1:
        return parts[0]
    second = ROOT / "runners" / parts[1]
    return f"runners.{parts[1]}" if second.is_dir() or second.with_suffix(".py").is_file() else None


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle of the directed graph ``edges`` (as a path), or ``[]``."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node], _ = 1, path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, path.pop()
        return []

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


@pytest.fixture(scope="module")
def trees() -> dict[Path, ast.AST]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in _sources()}


def test_the_rules_see_the_sources(trees):
    modules = {_module(p) for p in trees}
    assert {
        "runners.engine.trainer",
        "runners.core.record",
        "layers.regularizer",
        "regularizers.registry",
        "reports.results",
    } <= modules
    assert sum(1 for t in trees.values() for _ in _functions(t)) > 500


def test_no_function_is_too_long_or_takes_too_many_parameters(trees):
    problems = [p for path, tree in trees.items() for p in size_problems(path, tree)]
    assert not problems, "\n".join(problems)


def test_imports_follow_the_layering(trees):
    problems = [
        p for path, tree in trees.items() for p in import_problems(_module(path), imported(tree))
    ]
    assert not problems, "\n".join(problems)


def cfg_parameters(path: Path, tree: ast.AST) -> list[str]:
    """Functions of ``tree`` that take a parameter named ``cfg`` (the whole Hydra config)."""
    return [
        f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}({arg.arg})"
        for fn in _functions(tree)
        for arg in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        if arg.arg == "cfg"
    ]


@pytest.mark.parametrize("unit", NO_CONFIG)
def test_these_packages_take_no_config(trees, unit):
    files = [p for p in trees if _within(_module(p), unit)]
    named = [n for path in files for n in cfg_parameters(path, trees[path])]
    assert files and not named, "\n".join(named)


def test_packages_import_each_other_without_cycles(trees):
    edges: dict[str, set[str]] = {}
    for path, tree in trees.items():
        source = unit_of(_module(path))
        for name in imported(tree):
            target = unit_of(name)
            if source and target and target != source and target != "runners":
                edges.setdefault(source, set()).add(target)
    seen = set(edges) | {target for targets in edges.values() for target in targets}
    assert {"runners.engine", "runners.core", "reports", "layers", "models", "regularizers"} <= seen
    assert not (cycle := find_cycle(edges)), " -> ".join(cycle)


# -- each checker catches what it is for -----------------------------------------------------------

_LONG = "def f(a, b, c, d, e, f, g, h, i):\n" + "    x = 1\n" * 60


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("runners.core.record", "from runners.config import ConfigError"),
        ("runners.engine.hooks", "def f():\n    from runners.tasks.registry import build_task"),
        ("runners.engine.trainer", "import runners.data.sampler"),
        ("reports.results", "importlib.import_module('runners.engine.trainer')"),
        ("reports.collect", "from runners import search"),
        ("layers.regularizer", "from models import group_modules"),
        ("layers.placement", "from regularizers.registry import get"),
        ("regularizers.dropblock", "from runners.config.rules import validate"),
        ("regularizers.placement", "def f():\n    from models import group_modules"),
        ("reports.tables", "from regularizers import dropblock"),
        ("runners.core.checks", "import regularizers"),
        ("runners.tasks.classify", "import torch.distributed as dist"),
    ],
)
def test_a_forbidden_import_is_found(module, source):
    assert import_problems(module, imported(ast.parse(source)))


def test_allowed_imports_pass():
    assert not import_problems(
        "reports.collect", imported(ast.parse("from runners.core import record"))
    )
    assert not import_problems(
        "runners.dist.distributed", imported(ast.parse("import torch.distributed"))
    )
    assert not import_problems(
        "reports.tables", imported(ast.parse("from regularizers.registry import names"))
    )
    assert not import_problems(
        "regularizers.cbn", imported(ast.parse("from runners.core.checks import one_of"))
    )


def test_a_cfg_parameter_is_found():
    probe = ast.parse("def f(world, *, cfg):\n    pass\ndef g(batch):\n    pass")
    assert cfg_parameters(ROOT / "runners" / "dist" / "probe.py", probe) == [
        "runners/dist/probe.py:1 f(cfg)"
    ]


def test_long_functions_and_cycles_are_found():
    assert len(size_problems(ROOT / "runners" / "probe.py", ast.parse(_LONG))) == 2
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) == []
