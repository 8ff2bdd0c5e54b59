"""Imports run one way (issue 14, item 8): no circle among the package's modules, counting the
imports made inside functions too (a lazy import is still a dependency); only imports under
``if TYPE_CHECKING:`` (annotations, never run) are left out."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "screening"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _type_only(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_only(tree)
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "screening.cli.common" in _graph()["screening.cli"]


def test_no_import_circles_in_the_package():
    circles = _circles(_graph())
    assert not circles, circles


def test_no_module_imports_the_package_itself():
    """screening/__init__.py imports the API modules; a module importing the package is a circle."""
    graph = _graph()
    assert not sorted(name for name, deps in graph.items() if "screening" in deps and name != "screening")


def test_the_command_line_is_a_package_imported_one_way():
    """screening/cli/ (issue 14, item 8): one module per command family importing what they share
    from ``common``; ``__init__`` imports the command modules and nothing imports it back; the
    engine never imports the command line (only ``python -m screening`` runs it)."""
    graph = _graph()
    commands = {name for name in graph if name.startswith("screening.cli.")}
    assert {"screening.cli.common", "screening.cli.run", "screening.cli.zh"} <= commands
    assert graph["screening.cli"] >= commands - {"screening.cli.common", "screening.cli.zh"}
    assert not sorted(name for name in commands if "screening.cli" in graph[name])
    users = sorted(name for name, deps in graph.items() if not name.startswith("screening.cli")
                   and any(d == "screening.cli" or d.startswith("screening.cli.") for d in deps))
    assert users == ["screening.__main__"]
