"""The package layout: imports run one way (engine <- evaluation <- dashboard; benchmarks on top) with no circle.

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
