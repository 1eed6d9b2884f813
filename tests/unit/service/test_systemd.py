"""The systemd unit: `systemd-analyze verify` accepts it; install's steps, with a fake host."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adsync.config import Config, config_from_data
from adsync.service.layout import CONFIG_DIR, SYSUSERS_PATH, UNIT_PATH
from adsync.service.systemd import InstallError, install, render_unit


def config(**sections: object) -> Config:
    backends = {"hr": {"type": "webhook", "url": "https://127.0.0.1:9/", "secret": "env:HR"}}
    return config_from_data({"backends": backends, **sections})


def unit_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_is_hardened_and_reloads_with_sighup() -> None:
    d = unit_directives(
        render_unit(config(), Path("/etc/adsync/adsync.yaml"), "/opt/adsync/bin/python")
    )
    assert d["ExecStart"] == [
        "/opt/adsync/bin/python -m adsync run --config /etc/adsync/adsync.yaml"
    ]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in {
        "User": "adsync",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "StateDirectory": "adsync",
        "RuntimeDirectory": "adsync",
        "ConfigurationDirectory": "adsync",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert d[key] == [value], key
    assert d["TimeoutStopSec"] == ["60s"]  # shutdown_grace 30 s + 30
    assert "ReadWritePaths" not in d  # the default paths are the managed directories


def test_paths_outside_the_managed_directories_become_read_write_paths() -> None:
    cfg = config(
        queue={"path": "/srv/adsync data/queue.db"}, ingest={"unix_socket": "/run/x/s.sock"}
    )
    d = unit_directives(render_unit(cfg, Path("/etc/adsync/adsync.yaml"), "/opt/py/bin/python"))
    assert d["ReadWritePaths"] == ['"/srv/adsync data"', "/run/x"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="scripts/install-test-deps.sh installs systemd"
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "adsync.service"
    unit.write_text(render_unit(config(), Path("/etc/adsync/adsync.yaml"), sys.executable))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify prints problems on stderr; nothing about this unit may be reported
    problems = [line for line in done.stderr.splitlines() if "adsync.service" in line]
    assert done.returncode == 0 and problems == [], done.stderr


@dataclass
class FakeHost:
    root: bool = True
    existing: set[Path] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    written: dict[Path, str] = field(default_factory=dict)

    def is_root(self) -> bool:
        return self.root

    def write(self, path: Path, text: str, mode: int) -> None:
        self.written[path] = text
        self.calls.append(("write", str(path), oct(mode)))

    def run(self, argv: list[str]) -> None:
        self.calls.append(("run", *argv))

    def chown(self, path: Path, user: str, group: str) -> None:
        self.calls.append(("chown", str(path), f"{user}:{group}"))

    def chmod(self, path: Path, mode: int) -> None:
        self.calls.append(("chmod", str(path), oct(mode)))

    def exists(self, path: Path) -> bool:
        return path in self.existing

    def mkdir(self, path: Path) -> None:
        self.calls.append(("mkdir", str(path)))

    def make_key(self, path: Path, kind: str) -> None:
        self.calls.append(("make_key", str(path), kind))
        self.existing.add(path)


def test_install_makes_the_user_owns_the_files_and_enables_the_unit() -> None:
    host = FakeHost(existing={Path("/etc/adsync/master.key")})
    cfg = config(ingest={"tcp": None})
    install(host, cfg, Path("/etc/adsync/adsync.yaml"), "/opt/adsync/bin/python")
    assert ("run", "systemd-sysusers", str(SYSUSERS_PATH)) in host.calls
    assert host.written[SYSUSERS_PATH].strip().endswith("/var/lib/adsync /usr/sbin/nologin")
    assert ("chown", str(CONFIG_DIR), "root:adsync") in host.calls
    assert ("chmod", "/etc/adsync/adsync.yaml", "0o640") in host.calls
    assert ("chown", "/etc/adsync/master.key", "adsync:adsync") in host.calls
    assert ("chmod", "/etc/adsync/master.key", "0o600") in host.calls
    assert not any("filter.key" in " ".join(c) for c in host.calls)  # no TCP ingest, no PSK
    assert host.calls[-2:] == [
        ("run", "systemctl", "daemon-reload"),
        ("run", "systemctl", "enable", "adsync.service"),
    ]
    assert "ExecStart=/opt/adsync/bin/python -m adsync run" in host.written[UNIT_PATH]


def test_install_refuses_a_venv_the_unit_could_not_see() -> None:
    host = FakeHost()
    with pytest.raises(InstallError, match="ProtectHome"):
        install(host, config(), Path("/etc/adsync/adsync.yaml"), "/root/adsync/.venv/bin/python")
    assert host.calls == []


def test_install_needs_root() -> None:
    host = FakeHost(root=False)
    with pytest.raises(InstallError, match="run as root"):
        install(host, config(), Path("/etc/adsync/adsync.yaml"), "/opt/adsync/bin/python")
    assert host.calls == []


def test_install_makes_the_keys_the_daemon_cannot_write_itself() -> None:
    """/etc/adsync is read-only to the daemon: a new install gets its keys from install."""
    host = FakeHost()
    cfg = config(ingest={"tcp": "127.0.0.1:17635"})
    install(host, cfg, Path("/etc/adsync/adsync.yaml"), "/opt/adsync/bin/python")
    assert ("make_key", "/etc/adsync/master.key", "master") in host.calls
    assert ("make_key", "/etc/adsync/filter.key", "psk") in host.calls
    assert ("chown", "/etc/adsync/filter.key", "adsync:adsync") in host.calls


def test_install_never_makes_a_new_master_key_beside_a_queue() -> None:
    host = FakeHost(existing={Path("/var/lib/adsync/queue.db")})
    plan = install(
        host, config(ingest={"tcp": None}), Path("/etc/adsync/adsync.yaml"), "/opt/a/bin/python"
    )
    assert not any(c[0] == "make_key" for c in host.calls)
    assert any("MISSING but the queue exists" in line for line in plan.done)
