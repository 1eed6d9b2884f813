"""adsync.testing imports without its extra; using what needs it is one line naming it.

The production install (tests/integration/packaging) proves the imports in a venv without
pytest or lxml; here the same errors are shown in this process, with the module hidden.
"""

from __future__ import annotations

import sys

import pytest

import adsync.testing.samba_dc as samba_dc
import adsync.testing.slapd as slapd
from adsync.extras import MissingExtra
from adsync.testing import oim

LINE = "needs the 'testing' extra: pip install 'adsync[testing]'"


def test_the_oim_fake_without_lxml_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lxml", None)  # as if not installed
    oim._lxml.cache_clear()
    try:
        with pytest.raises(MissingExtra) as caught:
            oim.FakeOim()
    finally:
        oim._lxml.cache_clear()
    assert str(caught.value) == f"the OIM SPML fake (lxml) {LINE}"


def test_a_fixture_without_pytest_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(samba_dc, "samba_dc", raising=False)  # not built yet
    monkeypatch.setitem(sys.modules, "pytest", None)
    with pytest.raises(MissingExtra) as caught:
        samba_dc.samba_dc  # noqa: B018 (the access is the test)
    assert str(caught.value) == f"the samba_dc fixture {LINE}"


def test_fixtures_are_built_once_with_their_name_and_scope() -> None:
    from adsync.testing.samba_dc import samba_template
    from adsync.testing.slapd import slapd as fixture

    assert fixture is slapd.slapd and vars(slapd)["slapd"] is fixture  # built once
    assert samba_template is samba_dc.samba_template
    definitions = {
        "slapd": (fixture, "function"),
        "samba_template": (samba_template, "session"),
    }
    for name, (made, scope) in definitions.items():
        marker = getattr(made, "_fixture_function_marker", None)
        assert marker is not None, f"{name} is not a pytest fixture"
        assert (marker.name, marker.scope) == (name, scope)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'slapdd'"):
        slapd.slapdd  # noqa: B018
    with pytest.raises(ImportError):
        from adsync.testing.slapd import slapdd  # noqa: F401
