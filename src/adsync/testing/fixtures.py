"""pytest fixtures offered by a module that imports without pytest.

Every module of the installed package imports in a production install, where pytest is
not (tests/integration/packaging checks it). A module that offers fixtures (``slapd``,
``samba_dc``) keeps their plain generator functions in a table and hands its PEP 562
module ``__getattr__`` to ``fixture_attribute``: a fixture is built on first access
(``from adsync.testing.slapd import slapd`` in a conftest), when pytest is there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

from adsync.extras import require

Scope = Literal["session", "package", "module", "class", "function"]
FixtureTable = dict[str, tuple[Scope, Callable[..., Any]]]
"""fixture name -> (pytest scope, the fixture's generator function)"""


def fixture_attribute(module: str, table: FixtureTable, name: str) -> Any:
    """``module``'s fixture ``name`` (built once, then a plain attribute of the module)."""
    if name not in table:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    require("testing", f"the {name} fixture")
    import pytest

    scope, function = table[name]
    fixture = pytest.fixture(scope=scope, name=name)(function)
    setattr(sys.modules[module], name, fixture)
    return fixture


__all__ = ["FixtureTable", "Scope", "fixture_attribute"]
