"""Optional extras: a configured ldap backend without bonsai is one line naming the extra;
status and drain print plain text without rich."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adsync.cli import main
from adsync.cli.status import format_status
from adsync.extras import MissingExtra, installed, require

LDAP_CONFIG = """backends:
  directory:
    type: ldap
    url: ldaps://ldap.example.test
    bind_dn: cn=adsync
    bind_password: env:LDAP_PW
    base_dn: dc=example,dc=test
"""


def test_missing_extra_names_it_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bonsai", None)  # as if not installed
    assert not installed("ldap")
    with pytest.raises(MissingExtra) as caught:
        require("ldap", "the ldap backend")
    assert (
        str(caught.value) == "the ldap backend needs the 'ldap' extra: pip install 'adsync[ldap]'"
    )


def test_check_config_refuses_an_ldap_backend_without_bonsai(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "bonsai", None)
    config = tmp_path / "adsync.yaml"
    config.write_text(LDAP_CONFIG)
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        f"{config}:2: backends.directory: the ldap backend needs the 'ldap' extra: "
        "pip install 'adsync[ldap]'"
    )


def test_ldap_backend_loads_with_bonsai(tmp_path: Path) -> None:
    config = tmp_path / "adsync.yaml"
    config.write_text(LDAP_CONFIG)
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 0, result.output


STATUS = {
    "pid": 42,
    "backends": [
        {
            "name": "idp",
            "type": "scim",
            "configured": True,
            "lane": "running",
            "in_flight": 0,
            "pending": 3,
            "counts": {"delivered": 10, "failed": 1},
            "oldest_pending_age": 90,
            "last_error": None,
        }
    ],
}


def test_status_as_plain_text() -> None:
    lines = format_status(STATUS, 80).splitlines()
    assert lines[0] == "adsync daemon pid 42"
    header, row = lines[2], lines[3]
    assert header.split() == [
        "BACKEND",
        "TYPE",
        "STATE",
        "IN",
        "FLIGHT",
        "PENDING",
        "DELIVERED",
        "FAILED",
        "OLDEST",
    ]
    assert row.split() == ["idp", "scim", "running", "0", "3", "10", "1", "1.5m"]
    # right-aligned numbers end where their header ends
    assert row.index("3") + 1 == header.index("PENDING") + len("PENDING")
