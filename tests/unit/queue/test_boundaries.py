"""The queue's boundaries, read from the source: it owns its SQL, and depends on no consumer."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import adsync

SRC = Path(adsync.__file__).resolve().parent
QUEUE = SRC / "queue"
SQL_CALLS = {"execute", "executemany", "executescript"}


def modules(root: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]


def test_the_queue_imports_none_of_its_consumers() -> None:
    consumers = ("adsync.dispatch", "adsync.observe", "adsync.ingest", "adsync.daemon")
    found = [
        f"{path.relative_to(SRC)} imports {module}"
        for path, tree in modules(QUEUE)
        for module, _names in imported(tree)
        if module.startswith(consumers)
    ]
    assert found == []


def test_sql_runs_only_in_queue_sql() -> None:
    found = [
        f"{path.relative_to(SRC)}:{node.lineno} calls .{node.func.attr}()"
        for path, tree in modules(SRC)
        if path != QUEUE / "sql.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_CALLS
    ]
    assert found == []


def test_no_module_outside_the_queue_imports_its_private_names() -> None:
    found = [
        f"{path.relative_to(SRC)} imports {module}.{name}"
        for path, tree in modules(SRC)
        if QUEUE not in path.parents
        for module, names in imported(tree)
        if module.startswith("adsync.queue")
        for name in names
        if name.startswith("_")
    ]
    assert found == []
