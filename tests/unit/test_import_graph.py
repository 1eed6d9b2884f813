"""No import cycle between adsync's packages, read from the source with ``ast``.

A node is a first-level part of ``adsync``: a subpackage (``adsync.queue``, with
everything under it) or a top-level module (``adsync.daemon``). The root package
itself is the container, not a node. Every import counts, also those inside
functions or under ``TYPE_CHECKING``: a lazy import hides a cycle, it does not
remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Cycles tolerated for now, each as a sorted tuple of nodes. Empty: none is.
KNOWN_CYCLES: set[tuple[str, ...]] = set()

Edges = dict[str, dict[str, list[str]]]  # node -> node -> ["module:line", ...]


def _node(module: str, root: str) -> str | None:
    parts = module.split(".")
    if parts[0] != root or len(parts) == 1:
        return None
    return f"{root}.{parts[1]}"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, package: str) -> Iterator[tuple[str, int]]:
    """Every module name an import statement names (``from a import b``: ``a`` and ``a.b``)."""
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                yield alias.name, stmt.lineno
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                anchor = package.split(".")[: len(package.split(".")) - (stmt.level - 1)]
                base = ".".join([*anchor, *([stmt.module] if stmt.module else [])])
            yield base, stmt.lineno
            for alias in stmt.names:
                yield f"{base}.{alias.name}", stmt.lineno


def import_graph(src: Path, root: str) -> Edges:
    edges: Edges = {}
    for path in sorted((src / root).rglob("*.py")):
        module = _module_name(path, src)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        here = _node(module, root)
        for name, line in _imported(ast.parse(path.read_text(encoding="utf-8")), package):
            there = _node(name, root)
            if here is not None and there is not None and there != here:
                where = edges.setdefault(here, {}).setdefault(there, [])
                if f"{module}:{line}" not in where:
                    where.append(f"{module}:{line}")
    return edges


def cycles(edges: Edges) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def explain(edges: Edges, component: tuple[str, ...]) -> str:
    return "; ".join(
        f"{a} -> {b} ({', '.join(edges[a][b][:3])})"
        for a in component
        for b in edges.get(a, {})
        if b in component
    )


def test_no_import_cycle_between_packages() -> None:
    edges = import_graph(SRC, "adsync")
    assert edges, "no import found: the graph builder reads nothing"
    found = cycles(edges)
    unexpected = found - KNOWN_CYCLES
    assert not unexpected, "\n".join(explain(edges, c) for c in sorted(unexpected))
    assert not KNOWN_CYCLES - found, "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_the_graph_builder_finds_a_cycle_through_relative_and_lazy_imports(
    tmp_path: Path,
) -> None:
    files = {
        "pkg/__init__.py": "from pkg import tools\n",  # the root: not a node
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": "from ..b.two import X\n",
        "pkg/b/__init__.py": "",
        "pkg/b/two.py": "X = 1\ndef f():\n    from pkg.c import Y\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a.one\n",
        "pkg/tools.py": "import os\nfrom pkg import c\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = import_graph(tmp_path, "pkg")
    assert edges["pkg.a"] == {"pkg.b": ["pkg.a.one:1"]}
    assert edges["pkg.tools"] == {"pkg.c": ["pkg.tools:2"]}
    assert cycles(edges) == {("pkg.a", "pkg.b", "pkg.c")}
    (tmp_path / "pkg/c.py").write_text("")
    assert cycles(import_graph(tmp_path, "pkg")) == set()
