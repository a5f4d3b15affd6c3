"""The package layout: imports run one way (engine <- evaluation <- dashboard; benchmarks on top) with no circle,
and functions and modules stay small enough to read (STYLE.md: functions under about 60 lines, modules under
about 400).

The import graph is read from the source (every ``import`` statement, inside functions too), so a lazy import
that runs back up a layer fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("asr", "evaluation", "dashboard", "benchmarks")
# what each package may import from the project besides itself
ALLOWED = {"asr": set(), "evaluation": {"asr"}, "dashboard": {"asr", "evaluation"}, "benchmarks": {"asr", "evaluation"}}
SCORING_MAY_IMPORT = {"evaluation.normalizer", "asr.results"}  # the one scoring module sits on leaves only
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
# Modules allowed over MAX_MODULE_LINES, each with its size when it was listed and why: the list only shrinks
# (a listed module may not grow, and one that falls under the limit must leave the list).
LONG_MODULES: dict[str, int] = {}
# Functions allowed over MAX_FUNCTION_LINES ("path:qualified name": lines), under the same rule.
LONG_FUNCTIONS: dict[str, int] = {}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_runs_back_up_a_layer():
    wrong = [
        f"{src} imports {dst}"
        for src, targets in _graph().items()
        for dst in targets
        if (top := dst.split(".")[0]) != src.split(".")[0] and top not in ALLOWED[src.split(".")[0]]
    ]
    assert not wrong, wrong


def test_nothing_imports_the_benchmarks():
    users = [
        src
        for src, targets in _graph().items()
        if not src.startswith("benchmarks") and any(t.startswith("benchmarks") for t in targets)
    ]
    assert not users, users


def test_scoring_imports_only_leaves():
    assert _graph()["evaluation.scoring"] <= SCORING_MAY_IMPORT, _graph()["evaluation.scoring"]


def test_no_import_circle():
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for target in sorted(graph[node]):
            if not (target.startswith(node + ".") or node.startswith(target + ".")):  # a package and its modules
                visit(target, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Lines of every module and of every function (by ``path:Class.function``) in the four packages."""
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            source = path.read_text(encoding="utf-8")
            modules[name] = len(source.splitlines())
            _function_sizes(ast.parse(source), f"{name}:", functions)
    return modules, functions


def _function_sizes(node: ast.AST, prefix: str, out: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + child.name
            if not isinstance(child, ast.ClassDef):
                out[name] = child.end_lineno - child.lineno + 1
            _function_sizes(child, name + ".", out)
        else:
            _function_sizes(child, prefix, out)


def _over(sizes: dict[str, int], limit: int, allowed: dict[str, int]) -> list[str]:
    """What breaks the size rule: too long and not listed, grown past its listed size, or listed but short."""
    wrong = [f"{n}: {v} lines (limit {limit})" for n, v in sizes.items() if v > limit and n not in allowed]
    wrong += [f"{n}: grew to {sizes[n]} lines (listed at {v})" for n, v in allowed.items() if sizes.get(n, 0) > v]
    wrong += [f"{n}: now {sizes.get(n, 0)} lines, remove it from the list" for n, v in allowed.items()
              if sizes.get(n, 0) <= limit]  # fmt: skip
    return wrong


def test_functions_are_short():
    wrong = _over(_sizes()[1], MAX_FUNCTION_LINES, LONG_FUNCTIONS)
    assert not wrong, "split these functions (or list them in LONG_FUNCTIONS, with why):\n" + "\n".join(wrong)


def test_modules_are_short():
    wrong = _over(_sizes()[0], MAX_MODULE_LINES, LONG_MODULES)
    assert not wrong, "split these modules (or list them in LONG_MODULES, with why):\n" + "\n".join(wrong)
