"""The pre-shared key file of the TCP transport: 32 random bytes, readable by its owner only.

On Windows the file is the key protected with DPAPI (machine scope, entropy
``PSK_DPAPI_ENTROPY``), as ``native/lsa_filter/install.ps1`` writes it and the filter DLL
reads it (``win32/psk.c``); a raw 32-byte file is accepted there too. Its folder's ACL
(SYSTEM and Administrators only) is checked by the installer and the DLL: a POSIX mode
means nothing on Windows.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

from adsync.ingest.handshake import KEY_SIZE

PSK_DPAPI_ENTROPY = b"adsync/1 filter psk"
CRYPTPROTECT_UI_FORBIDDEN = 0x1
CRYPTPROTECT_LOCAL_MACHINE = 0x4
MAX_BLOB = 4096


class PskError(ValueError):
    """A key file that cannot be used; the message names the path, never the content."""


def load_or_create_psk(path: Path | str) -> bytes:
    """Read the key, or create it (mode 0600, never replacing a file) when it is absent."""
    path = Path(path)
    windows = sys.platform == "win32"
    try:
        return _load_windows(path) if windows else _load(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_SIZE)
    content = (
        _dpapi().CryptProtectData(key, "adsync filter psk", PSK_DPAPI_ENTROPY, None, None, _MACHINE)
        if windows
        else key
    )
    # Written in full under a private name, then linked into place: a reader never sees
    # a partial key, and link() fails rather than replace a key another process made.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags | getattr(os, "O_BINARY", 0), 0o600)
    except OSError as exc:
        raise PskError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # whatever the umask
            if os.write(fd, content) != len(content):
                raise PskError(f"short write creating key file {path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            return _load_windows(path) if windows else _load(path)
        except OSError as exc:
            raise PskError(f"cannot create key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return key


def read_psk(path: Path | str) -> bytes:
    """Read an existing key file (raw, or DPAPI on Windows) with the same checks; never create."""
    path = Path(path)
    try:
        return _load_windows(path) if sys.platform == "win32" else _load(path)
    except FileNotFoundError:
        raise PskError(f"key file {path} does not exist") from None


def _load(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PskError(f"cannot open key file {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PskError(f"key file {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise PskError(f"key file {path} is owned by uid {st.st_uid}, not by this user")
        if st.st_mode & 0o077:
            raise PskError(
                f"key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); make it 0600"
            )
        data = f.read(KEY_SIZE + 1)
    if len(data) != KEY_SIZE:
        raise PskError(f"key file {path} must hold exactly {KEY_SIZE} bytes")
    return data


_MACHINE = CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN


def _dpapi() -> Any:
    try:
        import win32crypt  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise PskError("a DPAPI-protected key file needs pywin32 (win32crypt)") from None
    return win32crypt


def _load_windows(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PskError(f"cannot open key file {path}: {exc.strerror}") from None
    if len(data) == KEY_SIZE:
        return data  # a raw key (made on Linux, or before the installer used DPAPI)
    if not data or len(data) > MAX_BLOB:
        raise PskError(f"key file {path} is neither a 32-byte key nor a DPAPI blob")
    try:
        _desc, key = _dpapi().CryptUnprotectData(data, PSK_DPAPI_ENTROPY, None, None, _MACHINE)
    except PskError:
        raise
    except Exception as exc:  # pywintypes.error: made on another machine, or damaged
        raise PskError(
            f"DPAPI cannot open key file {path} ({type(exc).__name__}): it was made on "
            "another machine or is damaged"
        ) from None
    if len(key) != KEY_SIZE:
        raise PskError(f"key file {path} does not hold a {KEY_SIZE}-byte key")
    return bytes(key)
