"""On Windows the PSK file is a DPAPI blob (machine scope, the filter's entropy), as
install.ps1 writes it and adsyncflt.dll reads it; a raw 32-byte file is still accepted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from adsync.ingest.psk import (
    CRYPTPROTECT_LOCAL_MACHINE,
    PSK_DPAPI_ENTROPY,
    PskError,
    load_or_create_psk,
)


@pytest.fixture
def on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")


def test_created_key_is_a_dpapi_blob(on_windows: None, win32crypt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "adsync" / "filter.key"
    key = load_or_create_psk(path)
    blob = path.read_bytes()
    assert len(key) == 32 and len(blob) != 32 and key not in blob
    assert load_or_create_psk(path) == key  # read back through DPAPI
    assert {(c[1], c[2] & CRYPTPROTECT_LOCAL_MACHINE) for c in win32crypt.calls} == {
        (PSK_DPAPI_ENTROPY, CRYPTPROTECT_LOCAL_MACHINE)
    }


def test_installer_blob_and_raw_key_accepted(on_windows: None, win32crypt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = bytes(range(32))
    blob = win32crypt.CryptProtectData(key, "x", PSK_DPAPI_ENTROPY, None, None, 5)
    (tmp_path / "blob.key").write_bytes(blob)
    (tmp_path / "raw.key").write_bytes(key)
    assert load_or_create_psk(tmp_path / "blob.key") == key
    assert load_or_create_psk(tmp_path / "raw.key") == key


def test_foreign_or_damaged_blob_refused(on_windows: None, win32crypt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "filter.key"
    path.write_bytes(b"not a dpapi blob at all, and not 32 bytes")
    with pytest.raises(PskError, match="DPAPI cannot open key file") as info:
        load_or_create_psk(path)
    assert "not a dpapi blob" not in str(info.value)  # the content is never quoted
    path.write_bytes(b"")
    with pytest.raises(PskError, match="neither a 32-byte key nor a DPAPI blob"):
        load_or_create_psk(path)


def test_read_psk_never_creates(tmp_path: Path) -> None:
    from adsync.ingest.psk import read_psk

    with pytest.raises(PskError, match="does not exist"):
        read_psk(tmp_path / "absent.key")
    assert not (tmp_path / "absent.key").exists()
    key = tmp_path / "k.key"
    key.write_bytes(bytes(32))
    key.chmod(0o644)
    with pytest.raises(PskError, match="accessible by group or others"):
        read_psk(key)
    key.chmod(0o600)
    assert read_psk(key) == bytes(32)
