"""The pre-shared key file of the TCP transport: 32 random bytes, readable by its owner only."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from adsync.ingest.handshake import KEY_SIZE


class PskError(ValueError):
    """A key file that cannot be used; the message names the path, never the content."""


def load_or_create_psk(path: Path | str) -> bytes:
    """Read the key, or create it (mode 0600, never replacing a file) when it is absent."""
    path = Path(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_SIZE)
    # Written in full under a private name, then linked into place: a reader never sees
    # a partial key, and link() fails rather than replace a key another process made.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PskError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            if os.write(fd, key) != KEY_SIZE:
                raise PskError(f"short write creating key file {path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _load(path)  # another process created it first: use theirs
        except OSError as exc:
            raise PskError(f"cannot create key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return key


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
