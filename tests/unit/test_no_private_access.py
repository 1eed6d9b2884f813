"""No module of adsync reaches into another module's private names (issue 12): neither by
importing ``_name`` from it nor through the module object (``other_module._name``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_crosses_a_module_boundary() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: set[str] = set()  # local names bound to adsync modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adsync"):
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {alias.name}")
                    modules.add(alias.asname or alias.name)  # may be a submodule
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("adsync"):
                        modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} uses {ast.unparse(node)}")
    assert found == []
