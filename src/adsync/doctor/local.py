"""Checks of this host: secrets, file modes and owners, ports, the queue and its key, the
daemon, the clock. Read-only: stat, read, connect; the queue opens read-only."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import urllib.error
import urllib.request
from pathlib import Path

from adsync.doctor.model import Context, Result
from adsync.filemodes import Kind, allowed_mode, exposure
from adsync.service.layout import SERVICE_USER, UNIT_PATH, secret_refs
from adsync.startup import interrupted_rotation_line, private_files

PSK_SIZE = 32
EARLIEST_SANE = 1_735_689_600  # 2025-01-01: a clock before this was never set
MAX_SKEW = 300.0  # seconds; Kerberos allows 5 minutes, TLS validity needs less than days


def secrets(ctx: Context) -> list[Result]:
    """Every secret reference resolves (its value is read and dropped, never shown)."""
    from adsync.secret import SecretRefError, resolve_secret_ref

    results = []
    base = ctx.config_path.absolute().parent
    for name, backend in ctx.config.backends.items():
        for key, ref in secret_refs(backend):
            label = f"secret backends.{name}.{key}"
            try:
                resolve_secret_ref(ref, base_dir=base)
            except SecretRefError as exc:
                if ref.startswith("env:"):
                    fix = (
                        f"set {ref[4:]} in the service's environment (systemctl edit adsync: "
                        "Environment=…; doctor sees only its own environment)"
                    )
                elif "Permission denied" in str(exc):
                    fix = "run adsync doctor as root (or the service's user)"
                else:
                    fix = f"create {ref[5:]} holding the secret, mode 0600 (or 0640 root:adsync)"
                results.append(Result.fail(label, str(exc), fix))
            else:
                results.append(Result.ok(label, f"{ref.partition(':')[0]} reference resolves"))
    results.append(_master_key(ctx))
    if ctx.config.ingest.tcp_address is not None:
        results.append(_psk(ctx))
    return results


def _master_key(ctx: Context) -> Result:
    keys = ctx.config.keys
    label = f"secret keys ({keys.provider})"
    if keys.provider == "env":
        if os.environ.get(keys.env):
            return Result.ok(label, f"{keys.env} is set")
        return Result.fail(
            label,
            f"{keys.env} is not set",
            f"set {keys.env} in the service's environment (doctor sees only its own)",
        )
    path = Path(keys.path)
    if path.exists():
        return Result.ok(label, f"{path} exists")
    if Path(ctx.config.queue.path).exists():
        return Result.fail(
            label,
            f"{path} is missing but the queue exists: the daemon will not start",
            "restore the key from backup (docs/operations.md, runbook 'Key lost')",
        )
    return Result.ok(label, f"{path} not created yet (the daemon makes it with the queue)")


def _psk(ctx: Context) -> Result:
    path = Path(ctx.config.ingest.psk_file)
    label = "secret ingest.psk_file"
    try:
        size = len(path.read_bytes())
    except FileNotFoundError:
        return Result.ok(label, f"{path} not created yet (the daemon makes it at start)")
    except OSError as exc:
        return Result.fail(label, f"cannot read {path}: {exc.strerror}", "fix its owner/mode")
    if size != PSK_SIZE:
        return Result.fail(
            label,
            f"{path} holds {size} bytes, not {PSK_SIZE}",
            "it must be the filter's 32 raw bytes: copy the file install.ps1 made",
        )
    return Result.ok(label, f"{path} holds a {PSK_SIZE}-byte key")


def service_ids() -> tuple[int, int] | None:
    """The service user's uid/gid when the systemd unit runs the daemon as it."""
    if os.name != "posix" or not UNIT_PATH.exists():
        return None
    import grp
    import pwd

    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid, grp.getgrnam(SERVICE_USER).gr_gid
    except KeyError:
        return None


def _secret_files(ctx: Context) -> list[tuple[Path, Kind]]:
    found = private_files(ctx.config, ctx.config_path)
    return [(path, kind) for path, kind in found if kind is not Kind.CONFIG]


def files(ctx: Context) -> list[Result]:
    """Modes (``adsync.filemodes``, the daemon's own rule) and, under the systemd unit,
    owners of the config, secrets and queue."""
    if ctx.windows or os.name != "posix":
        return [Result.skip("files", "modes are ACLs on Windows (install-adsync.ps1 sets them)")]
    ids = ctx.service_ids
    results = [_mode(ctx.config_path, Kind.CONFIG, "config file", ids=None)]
    for path, kind in _secret_files(ctx):
        if path.exists():
            results.append(_mode(path, kind, f"secret file {path.name}", ids=ids))
    queue = Path(ctx.config.queue.path)
    results.append(_mode(queue.parent, Kind.STATE_DIR, "queue directory", ids=ids))
    for suffix in ("", "-wal", "-shm"):
        path = queue.with_name(queue.name + suffix)
        if path.exists():
            results.append(_mode(path, Kind.STATE_FILE, f"queue file {path.name}", ids=ids))
    return results


def _mode(path: Path, kind: Kind, what: str, *, ids: tuple[int, int] | None) -> Result:
    name = f"{what} {path}"
    uid, gid = ids if ids is not None else (os.geteuid(), os.getegid())
    try:
        st = path.stat()
    except FileNotFoundError:
        mode = allowed_mode(kind, owner=uid, group=gid, uid=uid, gid=gid)
        return Result.fail(name, "does not exist", f"create it (mode {mode:04o})")
    except OSError as exc:
        return Result.fail(name, f"cannot stat: {exc.strerror}", "run doctor as root")
    found = exposure(path, kind, st.st_mode, owner=st.st_uid, group=st.st_gid, uid=uid, gid=gid)
    if found is not None:
        return Result.fail(name, found.problem, found.chmod)
    mode = stat.S_IMODE(st.st_mode)
    if ids is not None:
        readable = st.st_uid == uid or (st.st_gid == gid and mode & 0o040)
        if not readable:
            return Result.fail(
                name,
                f"the daemon's user {SERVICE_USER} cannot read it (owner uid {st.st_uid})",
                f"chown {SERVICE_USER}:{SERVICE_USER} {path}",
            )
    return Result.ok(name, f"mode {mode:04o}")


def _connects(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _healthz(listen: str, timeout: float = 5.0) -> tuple[int, dict[str, object]] | None:
    """(status, JSON) of ``/healthz`` when it answers as adsync does, else None."""
    url = f"http://{listen}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "status" not in data or "reasons" not in data:
        return None
    return status, data


def ports(ctx: Context) -> list[Result]:
    """Each port the daemon listens on is free, or held by this daemon (proved)."""
    results = []
    tcp = ctx.config.ingest.tcp_address
    if tcp is not None:
        host, port = tcp
        name = f"port ingest.tcp {host}:{port}"
        if not _connects(host, port):
            results.append(Result.ok(name, "free (the daemon is not listening)"))
        else:
            results.append(_tcp_owner(ctx, name, host, port))
    listen = ctx.config.metrics.listen
    if listen is not None:
        name = f"port metrics.listen {listen}"
        host, _, port_text = str(listen).rpartition(":")
        if not _connects(host.strip("[]"), int(port_text)):
            results.append(Result.ok(name, "free (the daemon is not listening)"))
        elif _healthz(str(listen)) is not None:
            results.append(Result.ok(name, "held by this daemon (/healthz answers)"))
        else:
            results.append(
                Result.fail(
                    name,
                    "in use by another program (no adsync /healthz there)",
                    "stop that program or move metrics.listen to a free loopback port",
                )
            )
    return results


def _tcp_owner(ctx: Context, name: str, host: str, port: int) -> Result:
    from adsync.ingest.client import DaemonAuthError, IngestClient, IngestError

    try:
        psk = Path(ctx.config.ingest.psk_file).read_bytes()
    except OSError as exc:
        return Result.fail(name, f"in use; the PSK cannot be read: {exc.strerror}", "run as root")
    try:
        with IngestClient.tcp(host, port, psk, timeout=5.0, client_name="adsync-doctor"):
            pass
    except DaemonAuthError:
        return Result.fail(
            name,
            "in use by a program that cannot prove the pre-shared key",
            "stop that program; the filter sends nothing to it, but the daemon cannot listen",
        )
    except (IngestError, OSError) as exc:
        return Result.fail(
            name, f"in use, the handshake failed ({type(exc).__name__})", "see the daemon's log"
        )
    return Result.ok(name, "held by this daemon (handshake with the PSK ok)")


def queue(ctx: Context) -> list[Result]:
    """The queue opens read-only and the master key unwraps every data key in it."""
    from adsync.queue import sql
    from adsync.queue.errors import QueueError, SealError
    from adsync.queue.keys import interrupted_master_rotation, key_provider_from_config
    from adsync.queue.rotation import verify_master

    path = Path(ctx.config.queue.path)
    name = f"queue {path}"
    if not path.exists():
        return [Result.ok(name, "not created yet (the daemon creates it at first start)")]
    try:
        provider = key_provider_from_config(ctx.config.keys)
        master = provider.master_key(create=False)
    except QueueError as exc:
        return [Result.fail(name, f"no master key: {exc}", "restore the key (runbook 'Key lost')")]
    staged = interrupted_master_rotation(provider, path)
    if staged is not None:
        return [
            Result.fail(
                name,
                interrupted_rotation_line(staged),
                f"adsync keys rotate --master --config {ctx.config_path}",
            )
        ]
    try:
        conn = _open_read_only(path)
    except sqlite3.Error as exc:
        return [Result.fail(name, f"does not open read-only: {exc}", "check its owner and mode")]
    try:
        verify_master(conn, master)
        count = len(sql.key_table(conn))
    except SealError:
        return [
            Result.fail(
                name,
                "the master key does not open this queue's data keys (wrong key?)",
                "put back the key this queue was made with (runbook 'Key lost')",
            )
        ]
    except sqlite3.Error as exc:
        return [
            Result.fail(
                name, f"cannot be read: {exc}", "check the file (sqlite3 PRAGMA integrity_check)"
            )
        ]
    finally:
        conn.close()
    return [Result.ok(name, f"opens with the master key ({count} keys unwrap)")]


def _open_read_only(path: Path) -> sqlite3.Connection:
    from adsync.queue import sql

    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        sql.key_table(conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def daemon(ctx: Context) -> list[Result]:
    """The running daemon answers: /healthz (200), else its Unix socket accepts."""
    listen = ctx.config.metrics.listen
    name = "daemon"
    if listen is not None:
        answer = _healthz(str(listen))
        if answer is None:
            return [
                Result.fail(
                    name,
                    f"no adsync daemon answers at http://{listen}/healthz",
                    _start_hint(ctx),
                )
            ]
        status, data = answer
        if status == 200:
            return [Result.ok(name, "answers; /healthz ok")]
        raw = data.get("reasons")
        reasons = "; ".join(str(r) for r in raw) if isinstance(raw, list) else ""
        return [Result.fail(name, f"unhealthy: {reasons}", "docs/operations.md, Health")]
    sock = ctx.config.ingest.unix_socket
    if sock is not None and hasattr(socket, "AF_UNIX"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2.0)
                s.connect(str(sock))
        except OSError as exc:
            return [
                Result.fail(
                    name,
                    f"nothing accepts on {sock} ({exc.strerror or type(exc).__name__})",
                    _start_hint(ctx),
                )
            ]
        return [Result.ok(name, f"accepts on {sock}")]
    return [Result.skip(name, "metrics.listen is null and no Unix socket: not probed")]


def _start_hint(ctx: Context) -> str:
    where = "the Application event log, source adsync" if ctx.windows else "journalctl -u adsync"
    return f"start it (adsync service start); why it stopped is in {where}"


def clock(ctx: Context) -> list[Result]:
    """The clock is set, and no target's Date header disagrees by more than 5 minutes."""
    now = ctx.now()
    if now < EARLIEST_SANE:
        return [
            Result.fail(
                "clock",
                f"the system clock says {_utc(now)}: it was never set",
                "enable time synchronisation (the DC's w32time / chrony / systemd-timesyncd)",
            )
        ]
    bad = [(name, skew) for name, skew in ctx.skews if abs(skew) > MAX_SKEW]
    if bad:
        name, skew = max(bad, key=lambda item: abs(item[1]))
        return [
            Result.fail(
                "clock",
                f"{_utc(now)}, but {name}'s clock differs by {skew:+.0f} s",
                "synchronise both clocks with the domain's time source (Kerberos and TLS "
                "need them within 5 minutes)",
            )
        ]
    compared = f"; within {MAX_SKEW:.0f} s of {len(ctx.skews)} target(s)" if ctx.skews else ""
    return [Result.ok("clock", f"{_utc(now)}{compared}")]


def _utc(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
