"""Two real Samba DCs replicating: an older password captured on DC1 is never sent after a
newer one set on DC2 (issue 14's stale-password guard, the scenario as the issue states it).

DC2 is joined with ``samba-tool domain join … DC`` in its own network namespace, connected
to DC1's over a veth pair (``adsync.testing.samba_pair``; docs/samba.md). Each DC has its
own daemon whose ``directory:`` is that DC; both deliver to one webhook target.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.plugin import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.samba_dc import ADMIN_PASSWORD, SambaTemplate, base_dn
from adsync.testing.samba_pair import SambaPair
from adsync.testing.webhook import DEFAULT_SECRET, WebhookTarget

pytestmark = pytest.mark.slow
WEBHOOK_ENV = "ADSYNC_TWO_DC_WEBHOOK"


def pw(label: str) -> str:
    value = f"{label}-Pässw0rd-{os.urandom(4).hex()}"
    REGISTRY.password(value)
    return value


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def pair(samba_template: SambaTemplate) -> Iterator[SambaPair]:
    pair = SambaPair(samba_template)
    try:
        pair.start()
        yield pair
    finally:
        pair.destroy()


def daemon_for(pair: SambaPair, which: int, work: Path, target: WebhookTarget) -> DaemonProcess:
    work.mkdir(parents=True)
    secret = work / "directory.secret"
    secret.write_text(ADMIN_PASSWORD)
    secret.chmod(0o600)
    backends = {
        "hr": {
            "type": "webhook",
            "url": target.url,
            "secret": f"env:{WEBHOOK_ENV}",
            "timeout": "2s",
            "retry": {"backoff": {"initial": "200ms", "max": "500ms", "factor": 2, "jitter": 0.1}},
        }
    }
    directory = {
        "url": f"ldapi://{pair.ldapi(which)}",
        "bind_dn": f"CN=Administrator,CN=Users,{base_dn()}",
        "bind_password": f"file:{secret}",
        "cache_ttl": "200ms",
    }
    return DaemonProcess(work, base_config(work, backends, directory=directory))


def send(daemon: DaemonProcess, account: str, password: str) -> None:
    with IngestClient.unix(daemon.unix_socket, timeout=10.0) as client:
        ack = client.change(
            account=account,
            password=Secret(password),
            changed_at_ms=int(time.time() * 1000),
            event_id=uuid.uuid4().bytes,
        )
    assert ack.status == 0, ack


def rows(daemon: DaemonProcess) -> list[dict[str, Any]]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "adsync", "queue", "list", "--json", "--config",
         str(daemon.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


async def eventually(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {within}s: {what}")


async def test_older_password_from_dc1_is_superseded_by_newer_one_from_dc2(
    pair: SambaPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, DEFAULT_SECRET)
    await asyncio.to_thread(pair.create_user, 1, "pat", pw("pat-0"))
    await asyncio.to_thread(pair.replicate, 2, 1)
    async with WebhookTarget() as target:
        target.respond(503)  # the target is down
        d1 = daemon_for(pair, 1, tmp_path / "d1", target)
        d2 = daemon_for(pair, 2, tmp_path / "d2", target)
        try:
            await asyncio.to_thread(d1.start)
            await asyncio.to_thread(d2.start)
            # The user changes the password on DC1; DC1's daemon captures it.
            older = pw("pat-1")
            await asyncio.to_thread(pair.set_password, 1, "pat", older)
            await asyncio.to_thread(send, d1, "pat", older)
            await eventually(
                lambda: any(r["last_outcome"] == "unreachable" for r in rows(d1)), 30,
                "DC1's daemon tried and the target was down",
            )  # fmt: skip
            # It replicates to DC2, where the user changes it again; DC2's daemon captures it.
            await asyncio.to_thread(pair.replicate, 2, 1)
            newer = pw("pat-2")
            await asyncio.to_thread(pair.set_password, 2, "pat", newer)
            await asyncio.to_thread(send, d2, "pat", newer)
            # The newer password replicates back to DC1; then the target comes back.
            await asyncio.to_thread(pair.replicate, 1, 2)
            target.clear_responses()
            await eventually(
                lambda: [r["state"] for r in rows(d1)] == ["superseded"], 30,
                "DC1's older change superseded",
            )  # fmt: skip
            await eventually(
                lambda: [r["state"] for r in rows(d2)] == ["delivered"], 30,
                "DC2's newer change delivered",
            )  # fmt: skip
            [r1] = rows(d1)
            assert r1["last_error"].startswith("newer password set on another DC (password version")
            assert [d.password_sha256 for d in target.deliveries] == [sha(newer)]
        finally:
            await asyncio.to_thread(d1.stop)
            await asyncio.to_thread(d2.stop)
