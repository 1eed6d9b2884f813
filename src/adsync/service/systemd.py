"""The systemd unit, rendered from the packaged template, and its installation.

Rendering is pure (the unit test runs ``systemd-analyze verify`` on it); installing goes
through ``Host``, so the steps are tested with a fake and only the real host touches /etc.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from adsync.service.layout import (
    CONFIG_DIR,
    HIDDEN_PREFIXES,
    RUNTIME_DIR,
    SERVICE_USER,
    STATE_DIR,
    SYSUSERS_PATH,
    UNIT_NAME,
    UNIT_PATH,
    under,
)

if TYPE_CHECKING:
    from adsync.config import Config


class InstallError(RuntimeError):
    """The service cannot be installed as asked; the message says what to change."""


def template(name: str) -> str:
    return files("adsync.service").joinpath(name).read_text(encoding="utf-8")


def _quote(value: str) -> str:
    """systemd's quoting for one ExecStart word (no specifiers, no variables)."""
    value = value.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def read_write_paths(config: Config) -> list[Path]:
    """Directories the daemon writes outside the ones systemd manages for it."""
    paths: list[Path] = []
    queue_dir = Path(config.queue.path).parent
    if not under(queue_dir, STATE_DIR):
        paths.append(queue_dir)
    sock = config.ingest.unix_socket
    if sock is not None and not under(Path(sock).parent, RUNTIME_DIR):
        paths.append(Path(sock).parent)
    return paths


def render_unit(config: Config, config_path: Path, python: str) -> str:
    rw = read_write_paths(config)
    lines = "\n".join(f"ReadWritePaths={_quote(str(p))}" for p in rw)
    stop = int(config.dispatch.shutdown_grace) + 30
    return (
        template("adsync.service.in")
        .replace("@PYTHON@", _quote(python))
        .replace("@CONFIG@", _quote(str(config_path)))
        .replace("@STOP_TIMEOUT@", f"{stop}s")
        .replace("@READ_WRITE_PATHS@\n", lines + "\n" if lines else "")
    )


class Host(Protocol):
    """What installing touches on the machine (a fake in tests)."""

    def is_root(self) -> bool: ...
    def write(self, path: Path, text: str, mode: int) -> None: ...
    def run(self, argv: list[str]) -> None: ...
    def chown(self, path: Path, user: str, group: str) -> None: ...
    def chmod(self, path: Path, mode: int) -> None: ...
    def exists(self, path: Path) -> bool: ...
    def mkdir(self, path: Path) -> None: ...
    def make_key(self, path: Path, kind: str) -> None:
        """Create a 32-byte key file (``master`` or ``psk``), mode 0600, never replacing one."""


@dataclass
class RealHost:
    def is_root(self) -> bool:
        return os.geteuid() == 0

    def write(self, path: Path, text: str, mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(mode)
        tmp.replace(path)

    def run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            err = (done.stderr or done.stdout).strip().splitlines()
            raise InstallError(f"{shlex.join(argv)} failed: {err[-1] if err else done.returncode}")

    def chown(self, path: Path, user: str, group: str) -> None:
        import shutil

        shutil.chown(path, user, group)

    def chmod(self, path: Path, mode: int) -> None:
        path.chmod(mode)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def mkdir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def make_key(self, path: Path, kind: str) -> None:
        if kind == "master":
            from adsync.queue.keys import FileKeyProvider

            FileKeyProvider(path).master_key(create=True)
        else:
            from adsync.ingest.psk import load_or_create_psk

            load_or_create_psk(path)


@dataclass
class Plan:
    """What ``install`` did, one line each, for the operator."""

    done: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.done.append(text)


def install(host: Host, config: Config, config_path: Path, python: str) -> Plan:
    """User, directories, ownership, key files, unit; enable (not start) the service."""
    config_path = config_path.absolute()
    if not host.is_root():
        raise InstallError("run as root: the unit goes to /etc/systemd/system")
    for what, path in (("the Python interpreter", Path(python)), ("the config", config_path)):
        if any(under(path, hidden) for hidden in HIDDEN_PREFIXES):
            raise InstallError(
                f"{what} ({path}) is under a home directory, which the hardened unit hides "
                "(ProtectHome=yes): install into a venv under /opt (python3 -m venv "
                "/opt/adsync) and keep the config in /etc/adsync"
            )
    plan = Plan()
    host.write(SYSUSERS_PATH, template("adsync.sysusers.conf"), 0o644)
    host.run(["systemd-sysusers", str(SYSUSERS_PATH)])
    plan.note(f"system user {SERVICE_USER} ({SYSUSERS_PATH})")
    host.mkdir(CONFIG_DIR)
    host.chown(CONFIG_DIR, "root", SERVICE_USER)
    host.chmod(CONFIG_DIR, 0o750)
    host.chown(config_path, "root", SERVICE_USER)
    host.chmod(config_path, 0o640)
    plan.note(f"{CONFIG_DIR} root:{SERVICE_USER} 0750, {config_path} root:{SERVICE_USER} 0640")
    # /etc/adsync is read-only to the daemon: the keys it would make at its first start are
    # made now (a master key only for a queue that does not exist yet: never a new key for
    # sealed data).
    queue_exists = host.exists(Path(config.queue.path))
    for path, kind in _daemon_files(config):
        if not host.exists(path):
            if kind == "master" and queue_exists:
                plan.note(
                    f"{path} is MISSING but the queue exists: restore it (runbook 'Key lost')"
                )
                continue
            host.make_key(path, kind)
            plan.note(f"{path} created ({kind} key)")
        host.chown(path, SERVICE_USER, SERVICE_USER)
        host.chmod(path, 0o600)
        plan.note(f"{path} {SERVICE_USER}:{SERVICE_USER} 0600")
    for path in read_write_paths(config):
        host.mkdir(path)
        host.chown(path, SERVICE_USER, SERVICE_USER)
        host.chmod(path, 0o700)
        plan.note(f"{path} {SERVICE_USER} 0700 (ReadWritePaths)")
    host.write(UNIT_PATH, render_unit(config, config_path, python), 0o644)
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "enable", UNIT_NAME])
    plan.note(f"{UNIT_PATH} written and enabled")
    return plan


def _daemon_files(config: Config) -> list[tuple[Path, str]]:
    """Key files the daemon itself reads: its own, so owned by its user."""
    paths = []
    if config.keys.provider == "file":
        paths.append((Path(config.keys.path), "master"))
    if config.ingest.tcp_address is not None:
        paths.append((Path(config.ingest.psk_file), "psk"))
    return paths


def remove(host: Host) -> None:
    host.run(["systemctl", "disable", "--now", UNIT_NAME])
    host.run(["rm", "-f", str(UNIT_PATH)])
    host.run(["systemctl", "daemon-reload"])


__all__ = ["InstallError", "Plan", "RealHost", "install", "remove", "render_unit"]
