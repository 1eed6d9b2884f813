"""One connection's reply side: batching, flow control and the closing ERROR.

Kept apart from the reading side (``server._Connection``) as aiohttp keeps flow
control in its protocol class: the replies of one loop tick go out in one write;
while the peer's buffer is over the high-water mark, a request that answers waits
(holding its slot, so the connection stops reading); a peer that does not read
its replies within the frame timeout is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from adsync.ingest.codec import ErrorReply, encode
from adsync.ingest.wire import VERSION

ERROR_WRITE_TIMEOUT: Final = 1.0  # the last ERROR before a close, or the wait for the close


class ReplyWriter:
    """Writes replies to one peer; ``on_drop`` runs when the peer is dropped (stop reading)."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        *,
        drain_timeout: float,
        on_slow_reader: Callable[[], None] = lambda: None,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._writer = writer
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop()
        self._drain_timeout = drain_timeout
        self._on_slow_reader = on_slow_reader
        self._on_drop = on_drop
        self._out: list[bytes] = []  # replies of this loop tick, written together
        self._flush_scheduled = False
        self._drainer: asyncio.Task[None] | None = None
        self._high_water = self._transport.get_write_buffer_limits()[1]
        self.broken = False  # set when the peer is gone: close by aborting, write nothing
        self.version = VERSION  # the connection's protocol version (HELLO's on TCP)
        # Version 2 after AUTH_OK: seals each frame as it is queued, so the wire order is
        # the counter order (sealing.Sealer).
        self.seal: Callable[[bytes], bytes] | None = None

    async def write(self, *frames: bytes) -> None:
        """Queue encoded replies; returns once the peer's buffer has room again."""
        if self.broken:
            return
        seal = self.seal
        self._out.extend(frames if seal is None else map(seal, frames))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)
        if self._drainer is not None:
            await asyncio.shield(self._drainer)

    def flush(self) -> None:
        """Write what is queued now (also called before the connection closes)."""
        self._flush_scheduled = False
        if self.broken or not self._out:
            self._out.clear()
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        try:
            self._transport.write(data)
        except (ConnectionError, OSError):
            self.drop()
            return
        if self._drainer is None and self._transport.get_write_buffer_size() > self._high_water:
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._writer.drain()
        except TimeoutError:
            self._on_slow_reader()
            self.drop()
        except (ConnectionError, OSError):
            self.drop()
        finally:
            self._drainer = None

    def drop(self) -> None:
        """The peer is gone or misbehaves: abort the connection without another byte."""
        self.broken = True
        self._transport.abort()
        self._on_drop()

    async def error(self, reason: str, request_id: int = 0) -> None:
        """Send ERROR (the last frame before a close), giving up after a second."""
        if self.broken:
            return
        with contextlib.suppress(Exception):
            frame = encode(ErrorReply(reason), request_id, self.version)
            self._writer.write(frame if self.seal is None else self.seal(frame))
            await asyncio.wait_for(self._writer.drain(), ERROR_WRITE_TIMEOUT)

    async def close(self) -> None:
        """Close after what was written (abort if the peer is gone) and wait briefly."""
        if self.broken:
            self._transport.abort()
        else:
            self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), ERROR_WRITE_TIMEOUT)
