"""Where the master key comes from: a 0600 file, an environment variable, or DPAPI.

The master key only wraps the queue's data keys (stored wrapped in the database);
it never seals a password itself. A provider creates a key only when the queue
tells it to (a fresh database): a missing key for an existing queue is an error,
never a silent new key that would make the stored changes unreadable.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from adsync.queue.errors import KeyProviderError, MasterKeyMissing

MASTER_KEY_BYTES = 32


class KeyProvider(Protocol):
    def master_key(self, *, create: bool = False) -> bytes:
        """The 32-byte master key; created only when ``create`` and it does not exist yet."""
        ...

    def describe(self) -> str:
        """Where the key lives, for error messages (never the key)."""
        ...


def _write_new_key_file(path: Path, content: bytes) -> None:
    """Create ``path`` with mode 0600 atomically-exclusively; never overwrite a key.

    The directory is synced too: a key whose name a power cut could lose would leave a
    queue whose keys are wrapped by it unreadable (found by tests/durability, posix model).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyProviderError(f"key file {path} appeared while creating it; retry") from None
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _read_private_file(path: Path) -> bytes | None:
    """The file's bytes, or None when absent; refuses a file others can read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise KeyProviderError(f"key file {path} is not a regular file")
    if sys.platform != "win32" and st.st_mode & 0o077:
        raise KeyProviderError(
            f"key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyProviderError(f"cannot read key file {path}: {exc.strerror}") from None


class _StagedKeyFile:
    """Staging for key files: ``<path>.new`` written exclusively, then renamed over ``path``."""

    path: Path

    def _encode(self, key: bytes) -> bytes:
        return key

    def _decode(self, blob: bytes, where: Path) -> bytes:
        return blob

    @property
    def staged_path(self) -> Path:
        return self.path.with_name(self.path.name + ".new")

    @property
    def previous_path(self) -> Path:
        return self.path.with_name(self.path.name + ".old")

    def stage(self, key: bytes) -> None:
        _write_new_key_file(self.staged_path, self._encode(key))

    def staged_key(self) -> bytes | None:
        blob = _read_private_file(self.staged_path)
        if blob is None:
            return None
        key = self._decode(blob, self.staged_path)
        if len(key) != MASTER_KEY_BYTES:
            raise KeyProviderError(f"staged key file {self.staged_path} has the wrong length")
        return key

    def commit_staged(self) -> None:
        """Keep the current key as ``.old``, move ``.new`` into place (each step atomic)."""
        if self.path.exists():
            self.previous_path.unlink(missing_ok=True)
            os.link(self.path, self.previous_path)
        os.replace(self.staged_path, self.path)
        _fsync_dir(self.path.parent)

    def discard_staged(self) -> None:
        self.staged_path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileKeyProvider(_StagedKeyFile):
    """32 raw random bytes in a file only its owner may read (the Linux default)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"key file {self.path}"

    def master_key(self, *, create: bool = False) -> bytes:
        data = _read_private_file(self.path)
        if data is None:
            if not create:
                raise MasterKeyMissing(f"master key file {self.path} does not exist")
            key = os.urandom(MASTER_KEY_BYTES)
            _write_new_key_file(self.path, key)
            return key
        if len(data) != MASTER_KEY_BYTES:
            raise KeyProviderError(
                f"key file {self.path} holds {len(data)} bytes, expected {MASTER_KEY_BYTES}"
            )
        return data


class EnvKeyProvider:
    """Base64 of 32 bytes in an environment variable (containers, secret managers)."""

    def __init__(self, var: str = "ADSYNC_MASTER_KEY") -> None:
        self.var = var

    def describe(self) -> str:
        return f"environment variable {self.var}"

    def master_key(self, *, create: bool = False) -> bytes:
        value = os.environ.get(self.var)
        if not value:
            raise MasterKeyMissing(
                f"environment variable {self.var} is not set "
                "(it must hold base64 of 32 random bytes; it is never created)"
            )
        try:
            key = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyProviderError(f"environment variable {self.var} is not valid base64") from None
        if len(key) != MASTER_KEY_BYTES:
            raise KeyProviderError(
                f"environment variable {self.var} decodes to {len(key)} bytes, "
                f"expected {MASTER_KEY_BYTES}"
            )
        return key


ProtectFn = Callable[[bytes], bytes]


class DpapiKeyProvider(_StagedKeyFile):
    """The master key in a file protected by Windows DPAPI (machine scope).

    ``protect``/``unprotect`` wrap CryptProtectData/CryptUnprotectData; they are
    injectable so the file handling is tested anywhere. Without them, only
    Windows with pywin32 can use this provider.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        protect: ProtectFn | None = None,
        unprotect: ProtectFn | None = None,
    ) -> None:
        self.path = Path(path)
        self._protect = protect
        self._unprotect = unprotect

    def describe(self) -> str:
        return f"DPAPI-protected key file {self.path}"

    def _functions(self) -> tuple[ProtectFn, ProtectFn]:
        if self._protect is not None and self._unprotect is not None:
            return self._protect, self._unprotect
        if sys.platform != "win32" and "win32crypt" not in sys.modules:
            raise KeyProviderError(
                "the dpapi key provider works only on Windows; use provider 'file' or 'env'"
            )
        return _win32_dpapi()

    def _encode(self, key: bytes) -> bytes:
        return self._functions()[0](key)

    def _decode(self, blob: bytes, where: Path) -> bytes:
        try:
            return self._functions()[1](blob)
        except KeyProviderError:
            raise
        except Exception as exc:
            raise KeyProviderError(
                f"DPAPI cannot unprotect {where} ({type(exc).__name__}); "
                "was it created on another machine?"
            ) from None

    def master_key(self, *, create: bool = False) -> bytes:
        protect, _ = self._functions()
        blob = _read_private_file(self.path)
        if blob is None:
            if not create:
                raise MasterKeyMissing(f"DPAPI key file {self.path} does not exist")
            key = os.urandom(MASTER_KEY_BYTES)
            _write_new_key_file(self.path, protect(key))
            return key
        key = self._decode(blob, self.path)
        if len(key) != MASTER_KEY_BYTES:
            raise KeyProviderError(
                f"DPAPI key file {self.path} holds {len(key)} bytes, expected {MASTER_KEY_BYTES}"
            )
        return key


CRYPTPROTECT_LOCAL_MACHINE = 0x4
CRYPTPROTECT_UI_FORBIDDEN = 0x1
DPAPI_ENTROPY = b"adsync/1 master key"


def _win32_dpapi() -> tuple[ProtectFn, ProtectFn]:
    """CryptProtectData/CryptUnprotectData from pywin32, machine scope, no UI (a service).

    Imported when first used, so the module loads on Linux; tests put a fake
    ``win32crypt`` in ``sys.modules`` to check the calls.
    """
    try:
        import win32crypt  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise KeyProviderError("the dpapi key provider needs pywin32 (win32crypt)") from None
    machine_scope = CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN
    entropy = DPAPI_ENTROPY

    def protect(data: bytes) -> bytes:
        blob: bytes = win32crypt.CryptProtectData(
            data, "adsync master key", entropy, None, None, machine_scope
        )
        return blob

    def unprotect(blob: bytes) -> bytes:
        _desc, data = win32crypt.CryptUnprotectData(blob, entropy, None, None, machine_scope)
        return bytes(data)

    return protect, unprotect


def master_opens(db: Path, master: bytes) -> bool:
    """Whether ``master`` unwraps the queue's keys (a read-only look; no queue opened)."""
    import sqlite3

    from adsync.queue.errors import SealError
    from adsync.queue.rotation import verify_master

    try:
        conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        verify_master(conn, master)
    except (SealError, sqlite3.Error):
        return False
    finally:
        conn.close()
    return True


def interrupted_master_rotation(provider: KeyProvider, db: Path) -> Path | None:
    """``<keys.path>.new`` when it opens the queue and the current key does not.

    That is ``adsync keys rotate --master`` stopped after committing the rewrap and
    before the rename: running it again finishes it. None in every other state.
    """
    if not isinstance(provider, _StagedKeyFile) or not db.exists():
        return None
    try:
        staged = provider.staged_key()
    except KeyProviderError:
        return None
    if staged is None or not master_opens(db, staged):
        return None
    try:
        if master_opens(db, provider.master_key()):
            return None
    except KeyProviderError:
        pass  # the current key is missing or unusable: the staged one is the way out
    return provider.staged_path


class KeysSettings(Protocol):
    """The ``keys:`` config section, as far as key providers need it."""

    @property
    def provider(self) -> str: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def env(self) -> str | None: ...


def key_provider_from_config(settings: KeysSettings) -> KeyProvider:
    """Build the configured provider (``file`` | ``dpapi`` | ``env``)."""
    kind = settings.provider
    if kind == "file":
        if settings.path is None:
            raise KeyProviderError("keys.path is required for provider 'file'")
        return FileKeyProvider(settings.path)
    if kind == "dpapi":
        if settings.path is None:
            raise KeyProviderError("keys.path is required for provider 'dpapi'")
        return DpapiKeyProvider(settings.path)
    if kind == "env":
        return EnvKeyProvider(settings.env or "ADSYNC_MASTER_KEY")
    raise KeyProviderError(f"unknown key provider {kind!r} (file | dpapi | env)")
