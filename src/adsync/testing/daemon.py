"""The real daemon as a subprocess, for end-to-end tests (SIGTERM, SIGKILL, restart).

The config is written as YAML from a dict; the daemon's log goes to a file that
the leak registry scans at the end of the test session.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adsync.testing.leaks import REGISTRY


def base_config(workdir: Path, backends: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A config on a Unix socket in ``workdir`` (TCP off), file key, JSON debug logs."""
    config: dict[str, Any] = {
        "ingest": {
            "unix_socket": str(workdir / "filter.sock"),
            "allowed_uids": [os.getuid()],
            "tcp": None,
            "psk_file": str(workdir / "filter.key"),
        },
        "queue": {"path": str(workdir / "queue.db")},
        "keys": {"provider": "file", "path": str(workdir / "master.key")},
        "precheck": {"backends": [], "timeout": "1s", "on_undecided": "accept"},
        "logging": {"level": "debug", "format": "json"},
        "metrics": {"listen": None},
        "backends": backends,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def idle_backend(workdir: Path) -> dict[str, Any]:
    """A valid backend that receives nothing: a webhook to a closed loopback port, its secret
    in ``workdir``. For tests that need a config (a config has at least one backend) but no
    target."""
    secret = workdir / "idle-webhook.secret"
    if not secret.exists():
        secret.write_text("idle-webhook-hmac-key\n", encoding="utf-8")
        secret.chmod(0o600)
    return {"type": "webhook", "url": "https://127.0.0.1:9/idle", "secret": f"file:{secret}"}


class DaemonProcess:
    """``adsync run`` in a subprocess. YAML is a superset of JSON, so JSON is written."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config = config
        self.config_path = workdir / "adsync.yaml"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.config_path.chmod(0o600)  # as the daemon wants it (else it warns at start)
        self.log_path = REGISTRY.watch(workdir / "daemon.log")
        queue_path = Path(config["queue"]["path"])
        for suffix in ("", "-wal", "-shm", "-journal"):
            REGISTRY.watch(queue_path.with_name(queue_path.name + suffix))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def unix_socket(self) -> Path:
        return Path(self.config["ingest"]["unix_socket"])

    def start(self, wait: float = 20.0, env: Mapping[str, str] | None = None) -> None:
        """Start and wait until it accepts; ``env`` is added to this process's environment
        for the daemon alone (runs side by side must not share os.environ changes)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, **env} if env else None,
        )
        log.close()
        self.wait_ready(wait)

    def command(self) -> list[str]:
        """The argv that runs the daemon (a test may wrap it, e.g. in ``unshare``)."""
        return [sys.executable, "-m", "adsync", "run", "--config", str(self.config_path)]

    def wait_ready(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._accepts():
                return
            time.sleep(0.05)
        raise RuntimeError(f"daemon not ready after {wait}s:\n{self.log_tail()}")

    def _accepts(self) -> bool:
        ingest = self.config["ingest"]
        try:
            if ingest.get("unix_socket"):
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(ingest["unix_socket"])
            else:
                host, _, port = str(ingest["tcp"]).rpartition(":")
                with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                    pass
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the graceful path."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
