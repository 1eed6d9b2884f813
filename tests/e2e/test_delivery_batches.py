"""A SIGKILL between a batch's POSTs and the commit of their outcomes: re-sent, never lost.

The lane claims rows ahead and records outcomes in batches, so at any moment some POSTs
have been answered whose outcome is not on disk yet. The target here is the strict
webhook fake; it SIGKILLs the daemon when it has taken the Nth POST, before answering
it, so that POST's outcome can never have been recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

from aiohttp import web

from adsync.testing.daemon import DaemonProcess
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

from .conftest import webhook_backend
from .test_core_e2e import queue_status, send_changes


class KillingTarget(WebhookTarget):
    """Kills ``pid`` when it has taken its ``kill_at``-th valid POST, before the answer."""

    kill_at = 0
    pid = 0

    async def _hook(self, request: web.Request) -> web.Response:
        response = await super()._hook(request)
        if self.kill_at and len(self.deliveries) == self.kill_at:
            self.kill_at = 0
            os.kill(self.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)  # the daemon is gone before this answer could be read
        return response


async def test_a_kill_between_the_posts_and_their_record_commit_resends_and_loses_nothing(
    make_daemon: Any, webhook_secret: str
) -> None:
    async with KillingTarget(secret=webhook_secret) as target:
        await target.go_down()
        daemon: DaemonProcess = make_daemon(
            {"hook": webhook_backend(target.url, concurrency=4)}, logging={"level": "info"}
        )
        await asyncio.to_thread(daemon.start)
        items = [
            (f"batch-user{i}", REGISTRY.password(f"Batch-{i}-Pässwörd"), os.urandom(16))
            for i in range(40)
        ]
        acks = await asyncio.to_thread(send_changes, daemon.unix_socket, items)
        assert len(acks) == 40
        assert daemon.proc is not None
        target.pid, target.kill_at = daemon.proc.pid, 10
        await target.come_back()
        async with asyncio.timeout(60):
            while daemon.proc.poll() is None:
                await asyncio.sleep(0.05)
        assert daemon.proc.returncode == -signal.SIGKILL
        killed_on = target.deliveries[9].event_id  # answered only after the kill

        await asyncio.to_thread(daemon.start)
        wanted = {event_id.hex() for _, _, event_id in items}
        async with asyncio.timeout(60):
            while not wanted <= {d.event_id for d in target.deliveries}:
                await asyncio.sleep(0.05)
        counts = Counter(d.event_id for d in target.deliveries)
        assert set(counts) == wanted, "every change reached the target"
        assert counts[killed_on] == 2, "the POST whose answer the kill cut off is sent again"
        async with asyncio.timeout(30):
            while (await queue_status(daemon))["counts"]["hook"]["delivered"] < 40:
                await asyncio.sleep(0.2)
        assert (await queue_status(daemon))["counts"]["hook"]["delivered"] == 40
