"""Child process for the crash test: appends forever, printing each id after its ACK.

Usage: python append_burst.py DB KEYFILE. Runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys

from adsync.plugin import Change
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import AppendStatus
from adsync.queue.store import Queue
from adsync.secret import Secret


async def one(queue: Queue, n: int) -> None:
    change = Change(
        event_id=os.urandom(16),
        account=f"crash{n % 50}",
        password=Secret(f"Crash-Pässwort-{n}"),
        changed_at_ms=1_700_000_000_000 + n,
        domain="ADSYNC",
    )
    (result,) = await queue.append_many([change])
    if result.status is AppendStatus.STORED:
        sys.stdout.write(change.event_id.hex() + "\n")
        sys.stdout.flush()


async def main(db: str, key: str) -> None:
    queue = await Queue.open(db, FileKeyProvider(key), ["a", "b"], max_pending=10**9)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    n = 0
    while True:
        await asyncio.gather(*(one(queue, n + i) for i in range(32)))
        n += 32


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
