"""``adsync doctor`` against a real daemon, a real TLS SCIM target and real files: healthy,
then each broken setup it claims to detect through the CLI (one test per ✗)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.scim import FakeScim
from adsync.testing.tls import TLSFiles, make_self_signed

pytestmark = pytest.mark.slow

TOKEN = "doctor-scim-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    workdir: Path
    daemon: DaemonProcess
    fake: FakeScim
    tls: TLSFiles
    metrics_port: int
    tcp_port: int

    @property
    def config_path(self) -> Path:
        return self.daemon.config_path

    def rewrite(self, **changes: Any) -> None:
        """Change the config file (the daemon keeps running with the old one)."""
        config = json.loads(self.config_path.read_text())
        for key, value in changes.items():
            config[key] = value
        self.config_path.write_text(json.dumps(config))

    async def doctor(self, *extra: str) -> tuple[int, dict[str, Any], str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adsync",
            "doctor",
            "--config",
            str(self.config_path),
            "--smb-conf",
            str(self.workdir / "no-smb.conf"),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        text = out.decode()
        return proc.returncode, (json.loads(text) if "--json" in extra else {}), text + err.decode()

    async def checks(self) -> tuple[int, dict[str, dict[str, str]]]:
        code, data, _ = await self.doctor("--json")
        return code, {c["name"]: c for c in data["checks"]}


def server_context(tls: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    tls = make_self_signed(tmp_path / "tls")
    token = tmp_path / "scim.token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    async with FakeScim(users=["jdoe"], token=TOKEN, ssl_context=server_context(tls)) as fake:
        metrics, tcp = free_port(), free_port()
        config = base_config(
            tmp_path,
            {
                "idp": {
                    "type": "scim",
                    "url": fake.base_url,
                    "token": f"file:{token}",
                    "tls": {"ca_file": str(tls.ca_file)},
                    "timeout": "5s",
                }
            },
            ingest={"tcp": f"127.0.0.1:{tcp}"},
            metrics={"listen": f"127.0.0.1:{metrics}"},
        )
        daemon = DaemonProcess(tmp_path, config)
        await asyncio.to_thread(daemon.start)
        try:
            yield Rig(tmp_path, daemon, fake, tls, metrics, tcp)
        finally:
            await asyncio.to_thread(daemon.stop, 30)


def failed(checks: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {name: c for name, c in checks.items() if c["status"] == "fail"}


async def test_healthy_setup_passes_every_check(rig: Rig) -> None:
    code, data, _ = await rig.doctor("--json")
    checks = {c["name"]: c for c in data["checks"]}
    assert failed(checks) == {} and code == 0 and data["ok"] is True
    assert checks["daemon"]["detail"] == "answers; /healthz ok"
    tcp = checks[f"port ingest.tcp 127.0.0.1:{rig.tcp_port}"]
    assert tcp["detail"] == "held by this daemon (handshake with the PSK ok)"
    assert checks[f"port metrics.listen 127.0.0.1:{rig.metrics_port}"]["status"] == "ok"
    assert checks[f"queue {rig.workdir / 'queue.db'}"]["detail"].startswith(
        "opens with the master key"
    )
    assert checks[f"target idp {rig.fake.base_url}"]["detail"] == "TLS handshake ok"
    assert "token accepted" in checks["target idp probe"]["detail"]
    assert checks["secret backends.idp.token"]["status"] == "ok"
    assert checks["samba hooks"]["status"] == "skip"
    assert "within 300 s of 1 target" in checks["clock"]["detail"]
    # the plain output: one line per check, marks, and the token never printed
    code, _, text = await rig.doctor()
    assert code == 0 and text.splitlines()[-1] == "all checks passed"
    assert all(line[0] in "✓-" for line in text.splitlines()[:-1])
    assert TOKEN not in text


async def test_missing_secret_file(rig: Rig) -> None:
    (rig.workdir / "scim.token").unlink()
    code, checks = await rig.checks()
    bad = failed(checks)
    assert code == 1
    assert "cannot read secret file" in bad["secret backends.idp.token"]["detail"]
    assert "mode 0600" in bad["secret backends.idp.token"]["fix"]


async def test_world_readable_secret_file(rig: Rig) -> None:
    token = rig.workdir / "scim.token"
    token.chmod(0o644)
    code, checks = await rig.checks()
    bad = failed(checks)
    assert code == 1 and list(bad) == [f"secret file scim.token {token}"]
    assert bad[f"secret file scim.token {token}"]["fix"] == f"chmod 0600 {token}"


async def test_secret_file_the_service_user_cannot_read(rig: Rig) -> None:
    """Under the systemd unit the daemon runs as adsync: a root-only secret is a ✗."""
    from adsync.config import load_config
    from adsync.doctor import Context
    from adsync.doctor.local import files

    st = (rig.workdir / "scim.token").stat()
    ctx = Context(
        config=load_config(rig.config_path),
        config_path=rig.config_path,
        service_ids=(st.st_uid + 4242, st.st_gid + 4242),
    )
    bad = [r for r in files(ctx) if r.status == "fail" and "scim.token" in r.name]
    assert len(bad) == 1 and "cannot read it" in bad[0].detail
    assert bad[0].fix.startswith("chown adsync:adsync ")


async def test_group_writable_config_file(rig: Rig) -> None:
    rig.config_path.chmod(0o664)
    code, checks = await rig.checks()
    name = f"config file {rig.config_path}"
    assert code == 1 and list(failed(checks)) == [name]
    # the daemon (this uid) owns it: group read is not how it reads it (adsync.filemodes)
    assert checks[name]["fix"] == f"chmod 0600 {rig.config_path}"


async def test_queue_directory_open_to_others(rig: Rig) -> None:
    rig.workdir.chmod(0o755)
    code, checks = await rig.checks()
    name = f"queue directory {rig.workdir}"
    assert code == 1 and list(failed(checks)) == [name]


async def test_metrics_port_held_by_another_program(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)

    async def squat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nnot adsync")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(squat, "127.0.0.1", rig.metrics_port)
    async with server:
        code, checks = await rig.checks()
    bad = failed(checks)
    assert code == 1
    assert (
        "in use by another program"
        in bad[f"port metrics.listen 127.0.0.1:{rig.metrics_port}"]["detail"]
    )
    assert "daemon" in bad  # and nothing answers as the daemon


async def test_ingest_port_held_by_an_impostor(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(64)
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", rig.tcp_port)
    async with server:
        code, checks = await rig.checks()
    name = f"port ingest.tcp 127.0.0.1:{rig.tcp_port}"
    assert code == 1 and checks[name]["status"] == "fail"
    assert checks[name]["detail"].startswith("in use")


async def test_daemon_not_running(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)
    code, checks = await rig.checks()
    assert code == 1 and list(failed(checks)) == ["daemon"]
    assert "adsync service start" in checks["daemon"]["fix"]
    assert checks[f"port ingest.tcp 127.0.0.1:{rig.tcp_port}"]["detail"].startswith("free")


async def test_queue_does_not_open_with_the_key(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)
    key = rig.workdir / "master.key"
    key.write_bytes(os.urandom(32))
    code, checks = await rig.checks()
    name = f"queue {rig.workdir / 'queue.db'}"
    assert code == 1 and checks[name]["status"] == "fail"
    assert "does not open this queue's data keys" in checks[name]["detail"]


async def test_master_key_missing_beside_a_queue(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)
    (rig.workdir / "master.key").unlink()
    code, checks = await rig.checks()
    assert code == 1
    assert "the queue exists" in checks["secret keys (file)"]["detail"]
    assert checks[f"queue {rig.workdir / 'queue.db'}"]["status"] == "fail"


async def test_psk_of_the_wrong_size(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop, 30)
    (rig.workdir / "filter.key").write_bytes(b"short")
    code, checks = await rig.checks()
    assert code == 1
    assert "holds 5 bytes, not 32" in checks["secret ingest.psk_file"]["detail"]


async def test_target_unreachable(rig: Rig) -> None:
    config = json.loads(rig.config_path.read_text())
    dead = f"https://127.0.0.1:{free_port()}/scim/v2"
    config["backends"]["idp"]["url"] = dead
    rig.config_path.write_text(json.dumps(config))
    code, checks = await rig.checks()
    assert code == 1 and "cannot connect" in checks[f"target idp {dead}"]["detail"]


async def test_target_certificate_not_trusted(rig: Rig) -> None:
    config = json.loads(rig.config_path.read_text())
    del config["backends"]["idp"]["tls"]
    rig.config_path.write_text(json.dumps(config))
    code, checks = await rig.checks()
    detail = checks[f"target idp {rig.fake.base_url}"]["detail"]
    assert code == 1 and detail.startswith("TLS certificate not trusted")


async def test_scim_token_refused(rig: Rig) -> None:
    rig.fake.token = "another-token"
    code, checks = await rig.checks()
    check = checks["target idp probe"]
    assert code == 1 and "401: the token is refused" in check["detail"]
    assert [r.method for r in rig.fake.received] == ["HEAD", "GET", "GET"]  # nothing written


async def test_scim_url_without_endpoint(rig: Rig) -> None:
    config = json.loads(rig.config_path.read_text())
    wrong = rig.fake.url + "/scim/v2/no-such-tenant"
    config["backends"]["idp"]["url"] = wrong
    rig.config_path.write_text(json.dumps(config))
    code, checks = await rig.checks()
    assert code == 1 and "404: no SCIM endpoint" in checks["target idp probe"]["detail"]


async def test_broken_config_is_one_failed_check(rig: Rig) -> None:
    rig.config_path.write_text("queue:\n  path: [\n")
    code, checks = await rig.checks()
    assert code == 1 and list(checks) == ["config"]
