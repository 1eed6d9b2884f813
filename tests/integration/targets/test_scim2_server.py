"""The scim backend and doctor's SCIM probe against a real SCIM 2.0 server: scim2-server
(in memory, tenants, a static bearer token), not our fake."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adsync.backends.scim import ScimBackend, ScimConfig
from adsync.backends.scim.protocol import NO_ENDPOINT
from adsync.config import config_from_data
from adsync.doctor import Context, Status
from adsync.doctor.targets import targets
from adsync.plugin import Change, OutcomeKind, Secret

TOKEN = "scim2-server-token"
PASSWORD = "Sc1m-Réal!pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``scim2-server`` on loopback with tenant ``acme``; yields its root URL."""
    exe = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
    assert exe is not None, "the test extra installs scim2-server"
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
            "--bearer-token",
            TOKEN,
            "--tenant",
            "acme",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "scim2-server did not start"
                )
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def create_user(base: str, user_name: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.post(
            f"{base}/Users",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name},
            headers={"Content-Type": "application/scim+json"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json(content_type=None))


async def get_user(base: str, user_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.get(f"{base}/Users/{user_id}") as resp:
            assert resp.status == 200
            return dict(await resp.json(content_type=None))


async def deliver(url: str, account: str, token: str = TOKEN) -> Any:
    import os

    os.environ["ADSYNC_TEST_SCIM2_TOKEN"] = token
    backend = ScimBackend(
        "idp",
        ScimConfig(type="scim", url=url, token="env:ADSYNC_TEST_SCIM2_TOKEN", timeout=5),
    )
    await backend.start()
    try:
        return await backend.deliver(
            Change(
                event_id=hashlib.sha256(account.encode()).digest()[:16],
                account=account,
                password=Secret(PASSWORD),
                changed_at_ms=1_800_000_000_000,
            )
        )
    finally:
        await backend.close()


async def test_password_is_replaced_on_a_real_server(server: str) -> None:
    base = f"{server}/acme/v2"
    user = await create_user(base, "jdoe-real")
    outcome = await deliver(base, "jdoe-real")
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.reason
    after = await get_user(base, user["id"])
    assert after["meta"]["version"] != user["meta"]["version"]  # the PATCH changed the user
    assert "password" not in after  # RFC 7643 §4.1.1: returned "never"


async def test_unknown_account_is_unknown_user(server: str) -> None:
    outcome = await deliver(f"{server}/acme/v2", "nobody-here")
    assert outcome.kind is OutcomeKind.UNKNOWN_USER


async def test_unknown_tenant_fails_at_once_with_the_reason(server: str) -> None:
    """scim2-server answers 404 "Unknown tenant" on the search (RFC 7644 §3.12)."""
    outcome = await deliver(f"{server}/no-such-tenant/v2", "jdoe-real")
    assert outcome.kind is OutcomeKind.FAILED and outcome.reason == NO_ENDPOINT


async def test_wrong_token_fails(server: str) -> None:
    outcome = await deliver(f"{server}/acme/v2", "jdoe-real", token="wrong")
    assert outcome.kind is OutcomeKind.FAILED and outcome.reason.startswith("HTTP 401")


@pytest.mark.parametrize(
    ("suffix", "token", "status", "expected"),
    [
        ("/acme/v2", TOKEN, Status.OK, "/Users?count=0 answer (token accepted)"),
        ("/acme/v2", "wrong", Status.FAIL, "the token is refused"),
        ("/no-such-tenant/v2", TOKEN, Status.FAIL, "404: no SCIM endpoint"),
    ],
)
async def test_doctor_probe(
    server: str, tmp_path: Path, suffix: str, token: str, status: Status, expected: str
) -> None:
    (tmp_path / "token").write_text(token)
    config = config_from_data(
        {
            "backends": {
                "idp": {
                    "type": "scim",
                    "url": server + suffix,
                    "token": f"file:{tmp_path / 'token'}",
                }
            }
        }
    )
    handshake, probe = await targets(Context(config=config, config_path=tmp_path / "adsync.yaml"))
    assert handshake.status is Status.OK and handshake.detail == "TCP connect ok"
    assert probe.name == "target idp probe"
    assert probe.status is status and expected in probe.detail
    await asyncio.sleep(0)
