"""The engine's modules form layers: no import cycle, handlers never reach back into the session.

The graph is read from the source with ``ast``, so an import hidden in a function body or under
``if TYPE_CHECKING:`` counts like one at the top of the module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import mirrorkit_lab.engine

PACKAGE = "mirrorkit_lab.engine"
ENGINE = Path(mirrorkit_lab.engine.__file__).parent
MODULES = {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
# the modules above the session: they create sessions, the session never names them
ABOVE_SESSION = {"instance"}


def _engine_module(dotted: str) -> str | None:
    prefix = PACKAGE + "."
    if dotted.startswith(prefix):
        name = dotted[len(prefix):].split(".")[0]
        return name if name in MODULES else None
    return None


def imports_of(module: str) -> set[str]:
    """Engine modules that `module` imports anywhere in its source."""
    tree = ast.parse((ENGINE / f"{module}.py").read_text(), filename=f"{module}.py")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_engine_module(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif node.level == 1:
                base = PACKAGE + (f".{node.module}" if node.module else "")
            else:
                continue          # outside the engine (mirrorkit_lab.crypto, .fs, ...)
            if base == PACKAGE:   # from . import a, b
                found.update(a.name for a in node.names if a.name in MODULES)
            else:
                found.update(filter(None, [_engine_module(base)]))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {m: imports_of(m) for m in sorted(MODULES)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph[node]):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in graph:
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "session" in graph["instance"]
    assert {"statements", "store"} <= graph["ddl_endpoints"]


def test_engine_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in mirrorkit_lab.engine: " + " -> ".join(cycle)


def test_only_the_modules_above_the_session_import_it():
    importers = {m for m, deps in import_graph().items() if "session" in deps}
    assert importers <= ABOVE_SESSION, f"{sorted(importers - ABOVE_SESSION)} import engine.session"
