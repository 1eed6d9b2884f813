"""Why the daemon does not start, in one line: the checks made before anything opens, and
the translation of what failed later into a line, a log event and a documented exit code.

docs/operations.md ("When the daemon does not start") lists every case. A message here
names a path, a config key or an address, never a value read from a file.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from adsync.filemodes import Exposure, Kind, exposure

if TYPE_CHECKING:
    from adsync.config import Config, IngestConfig

EXIT_CONFIG = 1  # the config file does not load (the same lines as check-config)
EXIT_QUEUE = 2  # the queue does not open: its key, its file, another daemon on it
EXIT_LISTEN = 3  # a listener cannot open: a port in use, the socket's directory
EXIT_FILES = 4  # a file or directory: a secret open to others, a permission refused


class StartupFailure(Exception):
    """The daemon stops before serving; ``str()`` is the one line for stderr."""

    def __init__(self, event: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.event = event
        self.message = message
        self.exit_code = exit_code


# --- before anything opens: private files ---------------------------------------------------


def private_files(config: Config, config_path: Path) -> list[tuple[Path, Kind]]:
    """The files of this config that must stay private, and what each is."""
    from adsync.service.layout import secret_refs

    config_path = config_path.absolute()
    found = [(config_path, Kind.CONFIG)]
    for backend in config.backends.values():
        for _key, ref in secret_refs(backend):
            if ref.startswith("file:"):
                path = Path(ref[5:])
                found.append(
                    (path if path.is_absolute() else config_path.parent / path, Kind.SECRET)
                )
    if config.keys.provider in ("file", "dpapi") and config.keys.path is not None:
        found.append((Path(config.keys.path), Kind.KEY))
    if config.ingest.tcp_address is not None:
        found.append((Path(config.ingest.psk_file), Kind.KEY))
    return found


def exposed_files(config: Config, config_path: Path) -> list[Exposure]:
    """Every private file that is more open than the rule allows (absent files are not)."""
    if os.name != "posix":  # ACLs on Windows: the installer sets them
        return []
    uid, gid = os.geteuid(), os.getegid()
    found = []
    for path, kind in private_files(config, config_path):
        try:
            st = path.stat()
        except OSError:
            continue  # missing or unreadable: its reader says so, with the key
        bad = exposure(path, kind, st.st_mode, owner=st.st_uid, group=st.st_gid, uid=uid, gid=gid)
        if bad is not None:
            found.append(bad)
    return found


def check_private_files(config: Config, config_path: Path) -> list[Exposure]:
    """Raise for a secret open to others; return the warnings (the config file)."""
    found = exposed_files(config, config_path)
    refused = [e for e in found if e.refused]
    if refused:
        raise StartupFailure("secret_file_not_private", str(refused[0]), EXIT_FILES)
    return found


def secret_problems(config: Config, config_path: Path) -> list[tuple[str, str, str]]:
    """Backend secrets that do not resolve: (backend, ``FILE:LINE: key``, reason).

    Such a backend does not start (the others do; docs/architecture.md): said once at
    start with the config line, before the plugin's own ``backend_start_failed``.
    """
    from adsync.config import key_line
    from adsync.secret import SecretRefError, resolve_secret_ref
    from adsync.service.layout import secret_refs

    base = config_path.absolute().parent
    found = []
    for name, backend in config.backends.items():
        for key, ref in secret_refs(backend):
            try:
                resolve_secret_ref(ref, base_dir=base)
            except SecretRefError as exc:
                path = ("backends", name, *key.split("."))
                line = key_line(config_path, path)
                where = f"{config_path}:{line}" if line else str(config_path)
                found.append((name, f"{where}: backends.{name}.{key}", str(exc)))
    return found


# --- what failed while starting -------------------------------------------------------------


@contextmanager
def listening(key: str, address: str, *, socket_key: str | None = None) -> Iterator[None]:
    """Around opening a listener: an OSError becomes a line naming ``key`` and ``address``
    (``socket_key`` for an error on a path: the Unix socket's directory or file).

    The ingest server refuses to replace a live socket or a file that is not one with a
    ``RuntimeError`` naming the path: that is a listener failure too.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename and socket_key is not None:
            key, address = socket_key, str(exc.filename)
        raise _listen_failure(key, address, exc) from None
    except RuntimeError as exc:
        raise StartupFailure("listen_failed", f"{socket_key or key}: {exc}", EXIT_LISTEN) from None


def ingest_listeners(ingest: IngestConfig) -> tuple[str, str]:
    """(config key, address) to name when the ingest listeners fail: TCP for a port clash."""
    if ingest.tcp is not None:
        return "ingest.tcp", str(ingest.tcp)
    return "ingest.unix_socket", str(ingest.unix_socket)


def _listen_failure(key: str, address: str, exc: OSError) -> StartupFailure:
    if exc.errno == errno.EADDRINUSE:
        port = address.rpartition(":")[2]
        return StartupFailure(
            "listen_address_in_use",
            f"{key} {address}: the address is already in use (another adsync, or another "
            f"program: `ss -ltnp 'sport = :{port}'`); stop it or choose another port",
            EXIT_LISTEN,
        )
    where = exc.filename or address
    return StartupFailure(
        "listen_failed",
        f"{key} {where}: cannot listen: {exc.strerror or type(exc).__name__}",
        EXIT_LISTEN,
    )


def explain(exc: BaseException, config: Config) -> StartupFailure | None:
    """The one line for an exception that stopped the start, or None (a bug: traceback)."""
    from adsync.ingest.psk import PskError
    from adsync.queue.errors import QueueError, QueueKeyError

    if isinstance(exc, StartupFailure):
        return exc
    if isinstance(exc, QueueKeyError):
        staged = _staged_that_opens(config)
        if staged is not None:
            return StartupFailure(
                "master_key_rotation_interrupted",
                interrupted_rotation_line(staged),
                EXIT_QUEUE,
            )
    queue = Path(config.queue.path)
    if isinstance(exc, QueueError) and queue.exists() and not os.access(queue, os.R_OK | os.W_OK):
        denied = PermissionError(errno.EACCES, "Permission denied", str(queue))
        return StartupFailure("permission_denied", permission_line(denied, queue), EXIT_FILES)
    if isinstance(exc, QueueError | sqlite3.DatabaseError):  # the queue converts most sqlite's
        return StartupFailure(
            "queue_open_failed", f"cannot open the queue {queue}: {exc}", EXIT_QUEUE
        )
    if isinstance(exc, PskError):
        return StartupFailure("psk_unusable", f"ingest.psk_file: {exc}", EXIT_FILES)
    if isinstance(exc, PermissionError):
        return StartupFailure("permission_denied", permission_line(exc, queue), EXIT_FILES)
    return None


def _staged_that_opens(config: Config) -> Path | None:
    from adsync.queue.errors import QueueError
    from adsync.queue.keys import interrupted_master_rotation, key_provider_from_config

    try:
        provider = key_provider_from_config(config.keys)
    except QueueError:
        return None
    return interrupted_master_rotation(provider, Path(config.queue.path))


def permission_line(exc: PermissionError, queue: Path) -> str:
    """What the daemon's user may not do, and the commands that give it its state."""
    user = _user_name()
    if not exc.filename:
        return f"permission denied ({exc.strerror}) for the daemon's user {user}"
    where = Path(exc.filename)
    state = queue.parent
    if where == state and not where.exists():
        fix = f"mkdir -m 0700 {state} && chown {user} {state}"
    elif where.is_file():
        fix = f"chown {user} {where} && chmod 0600 {where}"
    else:
        directory = where if where.is_dir() else where.parent
        fix = f"chown {user} {directory} && chmod 0700 {directory}"
    return (
        f"{where}: permission denied for the daemon's user {user}; its state must be its own: {fix}"
    )


def _user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - Windows, or a uid without a name
        return f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "(this user)"


# --- an interrupted master key rotation -----------------------------------------------------


def interrupted_rotation_line(staged: Path) -> str:
    """What to say about ``queue.keys.interrupted_master_rotation`` (run, keys, doctor)."""
    current = staged.with_name(staged.name.removesuffix(".new"))
    return (
        f"a master key rotation was interrupted: {current} does not open the queue's keys, "
        f"{staged} does; run `adsync keys rotate --master` (same --config) to finish it"
    )


__all__ = [
    "EXIT_CONFIG",
    "EXIT_FILES",
    "EXIT_LISTEN",
    "EXIT_QUEUE",
    "StartupFailure",
    "check_private_files",
    "explain",
    "exposed_files",
    "ingest_listeners",
    "interrupted_rotation_line",
    "listening",
    "private_files",
]
