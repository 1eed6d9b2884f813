"""The directory client's pure helpers and its missing-extra error (no socket)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adsync.cli import main
from adsync.directory.client import escape_filter, libldap_url

CONFIG = """directory:
  url: ldapi:///var/lib/samba/private/ldap_priv/ldapi
  auth: none
backends:
  hr: {type: webhook, url: 'https://hr.example.com/', secret: 'env:HR'}
"""


def test_missing_bonsai_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "bonsai", None)  # as if the ldap extra were not installed
    path = tmp_path / "adsync.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        f"{path}:1: directory: the directory: section needs the 'ldap' extra: "
        "pip install 'adsync[ldap]'"
    )


def test_filter_values_are_escaped() -> None:
    assert escape_filter("a*b(c)d\\e\x00") == "a\\2ab\\28c\\29d\\5ce\\00"
    assert escape_filter("Jürgen") == "Jürgen"


def test_ldapi_path_is_percent_encoded_for_libldap() -> None:
    assert libldap_url("ldapi:///var/lib/samba/private/ldap_priv/ldapi") == (
        "ldapi://%2Fvar%2Flib%2Fsamba%2Fprivate%2Fldap_priv%2Fldapi"
    )
    assert libldap_url("ldapi://%2Frun%2Fldapi") == "ldapi://%2Frun%2Fldapi"
    assert libldap_url("ldap://127.0.0.1") == "ldap://127.0.0.1"


def test_a_fresh_lookup_keeps_the_group_answers_it_did_not_ask_for() -> None:
    from adsync.config import DirectoryConfig
    from adsync.directory.client import AccountRecord, DirectoryClient
    from adsync.directory.metadata import PasswordVersion, VersionKind
    from adsync.directory.scope import AccountFacts

    client = DirectoryClient(DirectoryConfig(url="ldap://127.0.0.1", auth="none", cache_ttl=5.0))
    dn = "CN=alice,DC=x"
    v1, v2 = PasswordVersion(1, VersionKind.META), PasswordVersion(2, VersionKind.META)
    asked = frozenset({"OIM users", "No sync"})
    grouped = AccountRecord("alice", AccountFacts(dn, frozenset({"oim users"})), v1, asked, 100.0)
    client._cache["alice"] = grouped
    capture = AccountRecord("alice", AccountFacts(dn, frozenset()), v2, frozenset(), 102.0)
    merged = client._merged(capture)
    assert merged.version == v2  # the fresh version
    assert merged.facts is not None and merged.facts.groups == frozenset({"oim users"})
    assert merged.asked_groups == asked
    assert merged.fetched_at == 100.0  # expires with its older part
    late = AccountRecord("alice", AccountFacts(dn, frozenset()), v2, frozenset(), 106.0)
    assert client._merged(late) is late  # the old answers expired: not kept
    moved = AccountRecord("alice", AccountFacts("CN=alice,OU=y,DC=x", frozenset()), v2,
                          frozenset(), 102.0)  # fmt: skip
    assert client._merged(moved) is moved  # another DN: nothing kept
