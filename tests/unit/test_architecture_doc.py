"""docs/architecture.md stays true: every ``adsync.…`` name and repo path it gives exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"

# adsync.a.b or adsync.a.b.Class.method: dotted identifiers; ".…" or "<name>" end the match
NAME = re.compile(r"\badsync(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(r"`((?:src|docs|native|tests)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])`")


def resolves(name: str) -> bool:
    """A module, or an attribute (class, function, method) reached from the longest module."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_adsync_name_in_the_architecture_doc_imports() -> None:
    names = sorted(set(NAME.findall(DOC.read_text(encoding="utf-8"))))
    assert len(names) >= 30, names  # the parser found the map, not nothing
    missing = [n for n in names if not resolves(n)]
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_repo_path_in_the_architecture_doc_exists() -> None:
    paths = sorted(set(PATH.findall(DOC.read_text(encoding="utf-8"))))
    assert any(p.startswith("src/adsync/") for p in paths), paths
    missing = [p for p in paths if not (ROOT / p).exists() and "<name>" not in p]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_checker_refuses_a_name_that_does_not_exist() -> None:
    assert resolves("adsync.dispatch.dispatcher.Dispatcher.add_lane")
    assert not resolves("adsync.dispatch.no_such_module")
    assert not resolves("adsync.dispatch.dispatcher.NoSuchClass")
