"""The directory client's pure helpers and its missing-extra error (no socket)."""

from __future__ import annotations

import sys

import pytest

from adsync.directory.client import DirectoryError, escape_filter, import_bonsai, libldap_url


def test_missing_bonsai_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bonsai", None)  # import bonsai now raises ImportError
    with pytest.raises(DirectoryError) as info:
        import_bonsai()
    assert str(info.value) == (
        "the directory: section needs the LDAP extra: pip install 'adsync[ldap]'"
    )
    assert "\n" not in str(info.value)


def test_filter_values_are_escaped() -> None:
    assert escape_filter("a*b(c)d\\e\x00") == "a\\2ab\\28c\\29d\\5ce\\00"
    assert escape_filter("Jürgen") == "Jürgen"


def test_ldapi_path_is_percent_encoded_for_libldap() -> None:
    assert libldap_url("ldapi:///var/lib/samba/private/ldap_priv/ldapi") == (
        "ldapi://%2Fvar%2Flib%2Fsamba%2Fprivate%2Fldap_priv%2Fldapi"
    )
    assert libldap_url("ldapi://%2Frun%2Fldapi") == "ldapi://%2Frun%2Fldapi"
    assert libldap_url("ldap://127.0.0.1") == "ldap://127.0.0.1"
