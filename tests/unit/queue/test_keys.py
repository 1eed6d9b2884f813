"""Key providers: creation only when allowed, private files, clear errors without key bytes."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from adsync.queue.errors import KeyProviderError, MasterKeyMissing
from adsync.queue.keys import (
    DpapiKeyProvider,
    EnvKeyProvider,
    FileKeyProvider,
    key_provider_from_config,
)


def test_file_provider_creates_a_0600_key_only_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "master.key"
    provider = FileKeyProvider(path)
    with pytest.raises(MasterKeyMissing, match="does not exist"):
        provider.master_key()
    assert not path.exists()
    key = provider.master_key(create=True)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key
    assert provider.master_key() == key  # read back, not recreated
    assert provider.master_key(create=True) == key  # an existing key is never replaced


def test_file_provider_refuses_a_group_or_world_readable_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(KeyProviderError, match="chmod 600"):
        FileKeyProvider(path).master_key()
    path.chmod(0o640)
    with pytest.raises(KeyProviderError, match="group or others"):
        FileKeyProvider(path).master_key()


def test_file_provider_refuses_a_key_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(KeyProviderError, match="5 bytes, expected 32"):
        FileKeyProvider(path).master_key()


def test_file_provider_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    with pytest.raises(KeyProviderError, match="not a regular file"):
        FileKeyProvider(tmp_path / "d").master_key()


def test_env_provider_reads_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("TEST_ADSYNC_MK", base64.b64encode(key).decode())
    assert EnvKeyProvider("TEST_ADSYNC_MK").master_key() == key


def test_env_provider_errors_name_the_variable_never_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = EnvKeyProvider("TEST_ADSYNC_MK")
    monkeypatch.delenv("TEST_ADSYNC_MK", raising=False)
    with pytest.raises(MasterKeyMissing, match="TEST_ADSYNC_MK is not set"):
        provider.master_key(create=True)  # never created
    bad = "not base64 at all!!"
    monkeypatch.setenv("TEST_ADSYNC_MK", bad)
    with pytest.raises(KeyProviderError) as info:
        provider.master_key()
    assert bad not in str(info.value)
    short = base64.b64encode(os.urandom(16)).decode()
    monkeypatch.setenv("TEST_ADSYNC_MK", short)
    with pytest.raises(KeyProviderError, match="16 bytes, expected 32") as info:
        provider.master_key()
    assert short not in str(info.value)


def _fake_dpapi() -> tuple[list[bytes], Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """A stand-in for CryptProtectData: XOR with a machine secret plus a header."""
    machine = os.urandom(32)
    protected: list[bytes] = []

    def protect(data: bytes) -> bytes:
        blob = b"DPAPI" + bytes(a ^ b for a, b in zip(data, machine, strict=True))
        protected.append(blob)
        return blob

    def unprotect(blob: bytes) -> bytes:
        if not blob.startswith(b"DPAPI"):
            raise OSError("bad blob")
        return bytes(a ^ b for a, b in zip(blob[5:], machine, strict=True))

    return protected, protect, unprotect


def test_dpapi_provider_stores_only_the_protected_blob(tmp_path: Path) -> None:
    protected, protect, unprotect = _fake_dpapi()
    path = tmp_path / "master.dpapi"
    provider = DpapiKeyProvider(path, protect=protect, unprotect=unprotect)
    with pytest.raises(MasterKeyMissing):
        provider.master_key()
    key = provider.master_key(create=True)
    assert len(key) == 32
    assert path.read_bytes() == protected[0]
    assert key not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provider.master_key() == key


def test_dpapi_provider_reports_an_unprotect_failure(tmp_path: Path) -> None:
    _, protect, unprotect = _fake_dpapi()
    path = tmp_path / "master.dpapi"
    path.write_bytes(b"garbage")
    path.chmod(0o600)
    provider = DpapiKeyProvider(path, protect=protect, unprotect=unprotect)
    with pytest.raises(KeyProviderError, match="cannot unprotect"):
        provider.master_key()


def test_dpapi_provider_without_dpapi_says_it_needs_windows(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderError, match="only on Windows"):
        DpapiKeyProvider(tmp_path / "k").master_key(create=True)
    assert not (tmp_path / "k").exists()


class _Settings:
    def __init__(self, provider: str, path: Path | None = None, env: str | None = None):
        self.provider = provider
        self.path = path
        self.env = env


def test_provider_from_config(tmp_path: Path) -> None:
    file_provider = key_provider_from_config(_Settings("file", tmp_path / "k"))
    assert isinstance(file_provider, FileKeyProvider)
    dpapi = key_provider_from_config(_Settings("dpapi", tmp_path / "k"))
    assert isinstance(dpapi, DpapiKeyProvider)
    env = key_provider_from_config(_Settings("env", env="X_KEY"))
    assert isinstance(env, EnvKeyProvider) and env.var == "X_KEY"
    with pytest.raises(KeyProviderError, match=r"keys\.path is required"):
        key_provider_from_config(_Settings("file"))
    with pytest.raises(KeyProviderError, match="unknown key provider"):
        key_provider_from_config(_Settings("vault"))
