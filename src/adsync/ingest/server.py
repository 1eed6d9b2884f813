"""The ingest servers: Unix socket (peer uid check) and loopback TCP (PSK handshake).

Both transports share one connection loop: frames are split, validated and
handed to the ``IngestHandler``; CHANGEs and CHECKs of one connection are
handled concurrently (bounded per connection, back-pressure by not reading)
so the queue can commit many in one transaction. Nothing of a frame's content
is ever logged: only peer, type, length and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import stat
import struct
import sys
import tempfile
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from adsync.ingest import handshake
from adsync.ingest.budget import HandshakeBudget
from adsync.ingest.codec import (
    AckReply,
    Auth,
    AuthOk,
    Challenge,
    ChangeMsg,
    Check,
    FrameSplitter,
    Hello,
    Limits,
    Message,
    ProtocolError,
    VerdictReply,
    decode,
    decode_header,
    encode,
    truncate_utf8,
)
from adsync.ingest.handler import Ack, IngestHandler, Peer
from adsync.ingest.peeruid import peer_uid
from adsync.ingest.replies import ReplyWriter
from adsync.ingest.wire import CLIENT_TYPES, AckCode, MsgType, VerdictCode
from adsync.plugin import Candidate, Change, CheckResult
from adsync.secret import Secret, SecretIndex, scrub

log = structlog.get_logger("adsync.ingest")

_READ_SIZE: Final = 65536
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_WITHHELD: Final = "reason withheld: it contained the password"
# Listen backlog (the kernel caps it at net.core.somaxconn): a burst of hook processes
# during a stall of the daemon waits in the kernel instead of failing with EAGAIN.
BACKLOG: Final = 4096
_TOO_MANY: Final = "too many connections"


@dataclass(slots=True)
class IngestCounters:
    """Plain counters for metrics (read them; the server only adds)."""

    connections_open: int = 0
    connections_accepted: int = 0
    peers_refused: int = 0  # Unix peer uid not allowed
    connections_over_limit: int = 0
    handshakes_displaced: int = 0  # TCP handshakes closed to make room (flood from one peer)
    auth_failures: int = 0
    frames_refused: int = 0  # protocol errors
    slow_senders_closed: int = 0
    slow_readers_closed: int = 0  # replies not taken within the frame timeout
    idle_closed: int = 0
    changes_received: int = 0
    checks_received: int = 0
    handler_errors: int = 0


class _Close(Exception):
    """Ends a connection; ``reply`` is the ERROR reason sent first (None: close silently)."""

    def __init__(self, reply: str | None, request_id: int = 0) -> None:
        super().__init__(reply)
        self.reply = reply
        self.request_id = request_id


def check_loopback(host: str) -> str:
    """The host to bind, or ValueError if it is not a loopback address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"ingest TCP address {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise ValueError(f"refusing to listen on non-loopback address {host}")
    return host


class IngestServer:
    """Listens on the configured transports and feeds the handler.

    ``start()`` binds; ``stop_accepting()`` closes the listeners (existing
    connections go on); ``stop(grace)`` also stops reading, lets in-flight
    requests answer for up to ``grace`` seconds, then closes every connection.
    """

    def __init__(
        self,
        handler: IngestHandler,
        limits: Limits | None = None,
        *,
        unix_path: Path | str | None = None,
        allowed_uids: set[int] | frozenset[int] = frozenset({0}),
        socket_group: int | None = None,
        tcp: tuple[str, int] | None = None,
        psk: bytes | None = None,
    ) -> None:
        if unix_path is None and tcp is None:
            raise ValueError("the ingest server needs a Unix socket path or a TCP address")
        if tcp is not None:
            if psk is None or len(psk) != handshake.KEY_SIZE:
                raise ValueError(f"the TCP transport needs a {handshake.KEY_SIZE}-byte PSK")
            tcp = (check_loopback(tcp[0]), tcp[1])
        self.handler = handler
        self.limits = limits or Limits()
        self.unix_path = Path(unix_path) if unix_path is not None else None
        self.allowed_uids = frozenset(allowed_uids) | {os.getuid()}
        self.socket_group = socket_group
        self._tcp = tcp
        self._psk = psk
        self.counters = IngestCounters()
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        # Established connections, per transport (past any handshake); a connection over
        # the limit waits up to frame_timeout for a slot (a burst after a stall is served).
        self._established = {
            "unix": asyncio.Semaphore(self.limits.max_connections),
            "tcp": asyncio.Semaphore(self.limits.max_connections),
        }
        self._waiting: set[asyncio.Task[Any]] = set()  # connections waiting for a slot
        self._displaced_logged_at = -1e9
        self._displaced_unlogged = 0
        self._handshakes: HandshakeBudget[_Connection] = HandshakeBudget(
            self.limits.max_handshakes, self.limits.max_handshakes_per_peer
        )
        self._unix_identity: tuple[int, int] | None = None
        self._closing = False

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        _raise_open_files_limit()
        if self.unix_path is not None:
            sock = self._bind_unix(self.unix_path)
            try:
                server = await asyncio.start_unix_server(
                    self._accept_unix, sock=sock, limit=_READ_SIZE * 2, backlog=BACKLOG
                )
            except BaseException:
                sock.close()
                self._unlink_unix()
                raise
            self._servers.append(server)
        if self._tcp is not None:
            host, port = self._tcp
            try:
                server = await asyncio.start_server(
                    self._accept_tcp,
                    host,
                    port,
                    reuse_address=True,
                    limit=_READ_SIZE * 2,
                    backlog=BACKLOG,
                )
            except BaseException:
                await self.stop()
                raise
            self._servers.append(server)
        log.info(
            "ingest_listening",
            unix_socket=str(self.unix_path) if self.unix_path else None,
            tcp=f"{self.tcp_address[0]}:{self.tcp_address[1]}" if self.tcp_address else None,
        )

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The bound TCP address (the real port when 0 was configured)."""
        for server in self._servers:
            for sock in server.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    name = sock.getsockname()
                    return str(name[0]), int(name[1])
        return None

    async def stop_accepting(self) -> None:
        """Close the listeners; connections already open keep being served.

        The listening sockets stop polling first and the loop turns a few times,
        so a connection accepted a moment ago is attached (and served) before the
        listener closes; closing under it would leave that peer hanging.
        """
        loop = asyncio.get_running_loop()
        for server in self._servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        for _ in range(3):
            await asyncio.sleep(0)
        for server in self._servers:
            server.close()
        self._unlink_unix()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, stop reading, let in-flight requests answer, close everything."""
        await self.stop_accepting()
        self._closing = True
        for task in list(self._waiting):
            task.cancel()
        connections = list(self._connections)
        for conn in connections:
            conn.stop_reading()
        if connections:
            waiters = [asyncio.create_task(c.done.wait()) for c in connections]
            _done, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        for conn in list(self._connections):
            conn.abort()
        for conn in connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.done.wait(), timeout=1.0)
        self._servers.clear()

    # --- Unix socket file -----------------------------------------------------------------

    def _bind_unix(self, path: Path) -> socket.socket:
        """Bind under a private name, set mode and group, then rename into place.

        The socket is never reachable with a wider mode than configured, and a
        live daemon's socket (or any non-socket file) is never replaced.
        """
        self._make_socket_dir(path.parent)
        self._refuse_live_socket(path)
        mode = 0o660 if self.socket_group is not None else 0o600
        tmpdir = tempfile.mkdtemp(prefix=".adsync-", dir=path.parent)
        tmp = Path(tmpdir) / "s"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, mode)
            if self.socket_group is not None:
                os.chown(tmp, -1, self.socket_group)
            os.rename(tmp, path)
            st = os.stat(path)
            self._unix_identity = (st.st_dev, st.st_ino)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(tmpdir)
        return sock

    def _make_socket_dir(self, directory: Path) -> None:
        """Create the socket's directory (``/run`` is empty at boot): 0750 with the socket's
        group when one is configured, so its members can reach the 0660 socket; else 0700.
        A directory that already exists is left as the administrator made it."""
        if directory.is_dir():
            return
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return  # made meanwhile by someone else: theirs
        if self.socket_group is not None:
            os.chown(directory, -1, self.socket_group)
            os.chmod(directory, 0o750)  # noqa: S103 - the group must reach its socket
        else:
            os.chmod(directory, 0o700)  # whatever the umask

    @staticmethod
    def _refuse_live_socket(path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # stale socket of a daemon that is gone: replaced by the rename
        except OSError:
            raise RuntimeError(f"{path} is in use by another process") from None
        else:
            raise RuntimeError(f"another process is listening on {path}")
        finally:
            probe.close()

    def _unlink_unix(self) -> None:
        if self.unix_path is None or self._unix_identity is None:
            return
        with contextlib.suppress(OSError):
            st = os.lstat(self.unix_path)
            if (st.st_dev, st.st_ino) == self._unix_identity:
                self.unix_path.unlink()
        self._unix_identity = None

    # --- accepting ------------------------------------------------------------------------

    async def _accept_unix(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sock = writer.get_extra_info("socket")
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            pid, uid, _gid = _PEERCRED.unpack(raw)
        except OSError:
            pid, uid = -1, -1
        if uid not in self.allowed_uids:
            self.counters.peers_refused += 1
            log.warning("ingest_peer_refused", transport="unix", uid=uid, pid=pid)
            writer.transport.abort()
            return
        await self._serve(reader, writer, Peer("unix", f"uid={uid} pid={pid}"), needs_auth=False)

    async def _accept_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = writer.get_extra_info("peername")
        if not isinstance(name, tuple):
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock.family, name, writer.get_extra_info("sockname"))
        description = f"{name[0]}:{name[1]}" + (f" uid={uid}" if uid is not None else "")
        key = ("uid", uid) if uid is not None else ("address", name[0])
        await self._serve(reader, writer, Peer("tcp", description), needs_auth=True, key=key)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        *,
        needs_auth: bool,
        key: tuple[str, object] | None = None,
    ) -> None:
        if self._closing:
            writer.transport.abort()
            return
        if not needs_auth:
            try:
                admitted = await self._take_established(peer)
            except asyncio.CancelledError:  # stop() while waiting for a slot
                writer.transport.abort()
                return
            if not admitted or self._closing:
                if admitted:
                    self._established[peer.transport].release()
                else:
                    replies = ReplyWriter(writer, drain_timeout=self.limits.frame_timeout)
                    await replies.error(_TOO_MANY)
                writer.transport.abort()
                return
        conn = _Connection(self, reader, writer, peer, needs_auth=needs_auth, key=key)
        if needs_auth:
            displaced = self._handshakes.admit(key, conn)
            if displaced is not None:
                self._displace(displaced)
        self._connections.add(conn)
        self.counters.connections_accepted += 1
        self.counters.connections_open += 1
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            self.counters.connections_open -= 1
            if not self._handshakes.release(key, conn) and conn.established:
                self._established[peer.transport].release()

    def _displace(self, conn: _Connection) -> None:
        """Close a handshake whose slot a newer one took; logged at most once a second
        (with the count since), so a flood cannot flood the log as well."""
        self.counters.handshakes_displaced += 1
        self.counters.connections_over_limit += 1
        self._displaced_unlogged += 1
        now = asyncio.get_running_loop().time()
        if now - self._displaced_logged_at >= 1.0:
            log.warning(
                "ingest_handshakes_displaced",
                peer=conn.peer.description,
                displaced=self._displaced_unlogged,
                limit=self.limits.max_handshakes,
                per_peer=self.limits.max_handshakes_per_peer,
            )
            self._displaced_logged_at = now
            self._displaced_unlogged = 0
        conn.displace()

    async def _take_established(self, peer: Peer) -> bool:
        """A slot among the established connections of the peer's transport (each has its
        own ``max_connections``: TCP sources cannot crowd out the Unix socket's). Only
        peers that passed the uid check or the handshake get here; one over the limit
        waits up to ``frame_timeout`` for a slot, then is refused."""
        slots = self._established[peer.transport]
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            async with asyncio.timeout(self.limits.frame_timeout):
                await slots.acquire()
            return True
        except TimeoutError:
            self.counters.connections_over_limit += 1
            log.warning(
                "ingest_too_many_connections",
                transport=peer.transport,
                peer=peer.description,
                limit=self.limits.max_connections,
            )
            return False
        finally:
            self._waiting.discard(task)

    async def _authenticated(self, conn: _Connection) -> bool:
        """Move ``conn`` from the handshake budget to the established TCP connections."""
        self._handshakes.release(conn.key, conn)
        return await self._take_established(conn.peer)


class _Connection:
    """One peer: handshake (TCP), then frames until EOF, error, timeout or stop."""

    def __init__(
        self,
        server: IngestServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        *,
        needs_auth: bool,
        key: tuple[str, object] | None = None,
    ) -> None:
        self.server = server
        self.key = key
        self.established = not needs_auth  # holds an established slot (not a handshake one)
        self._displaced = False
        self.limits = server.limits
        self.counters = server.counters
        self.reader = reader
        self.replies = ReplyWriter(
            writer,
            drain_timeout=self.limits.frame_timeout,
            on_slow_reader=self._slow_reader,
            on_drop=self.stop_reading,
        )
        self.peer = peer
        self.needs_auth = needs_auth
        self.done = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._splitter = FrameSplitter(self.limits.max_frame)
        self._ready: deque[bytes] = deque()
        self._frame_deadline = 0.0
        self._slots = asyncio.Semaphore(self.limits.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_task: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            close: _Close | None = None
            self._read_task = asyncio.create_task(self._read_loop())
            try:
                await self._read_task
            except _Close as exc:
                close = exc
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we ourselves are being cancelled, not just the reading
                if self._displaced:
                    close = _Close(_TOO_MANY)
            if self._tasks:
                await asyncio.wait(set(self._tasks))  # in-flight requests answer first
            self.replies.flush()
            if close is not None and close.reply is not None:
                await self.replies.error(close.reply, close.request_id)
        finally:
            for task in self._tasks:
                task.cancel()
            await self.replies.close()
            self.done.set()

    def stop_reading(self) -> None:
        if self._read_task is not None and not self._read_task.done():
            self._read_task.cancel()

    def displace(self) -> None:
        """A newer handshake took this one's slot: ERROR, close (the handshake budget)."""
        self._displaced = True
        self.stop_reading()

    def abort(self) -> None:
        """Past the grace: cancel in-flight requests and drop the connection."""
        for task in self._tasks:
            task.cancel()
        self.replies.drop()

    # --- reading --------------------------------------------------------------------------

    async def _next_payload(self, hard_deadline: float | None = None) -> bytes | None:
        """The next complete payload; None at a clean EOF.

        ``hard_deadline`` (the handshake's) caps every wait. Idle time only counts
        while no request of this connection is being handled.
        """
        while not self._ready:
            if self._splitter.failed:
                self._feed(b"")
            now = self._loop.time()
            in_frame = self._splitter.in_frame
            wait = self._frame_deadline - now if in_frame else self.limits.idle_timeout
            if hard_deadline is not None and hard_deadline - now < wait:
                wait = hard_deadline - now
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    data = await self.reader.read(_READ_SIZE)
            except TimeoutError:
                now = self._loop.time()
                if hard_deadline is not None and now >= hard_deadline:
                    raise _Close("handshake not completed in time") from None
                if in_frame:
                    self.counters.slow_senders_closed += 1
                    log.info("ingest_slow_sender_closed", peer=self.peer.description)
                    raise _Close("frame not completed in time") from None
                if self._tasks:
                    continue  # waiting for our own answers is not idleness
                self.counters.idle_closed += 1
                log.info("ingest_idle_closed", peer=self.peer.description)
                raise _Close("idle timeout") from None
            except (ConnectionError, OSError):
                self.replies.broken = True  # closed by aborting
                return None
            if not data:
                if self._splitter.in_frame:
                    self._refused("connection closed inside a frame", None, 0)
                return None
            if not in_frame:
                self._frame_deadline = self._loop.time() + self.limits.frame_timeout
            payloads = self._feed(data)
            if payloads and self._splitter.in_frame:
                self._frame_deadline = self._loop.time() + self.limits.frame_timeout
            self._ready.extend(payloads)
        return self._ready.popleft()

    def _feed(self, data: bytes) -> list[bytes]:
        try:
            return self._splitter.feed(data)
        except ProtocolError as exc:
            self._refused(exc.reason, None, 0)
            raise _Close(exc.reason) from None

    async def _read_loop(self) -> None:
        if self.needs_auth:
            hard = self._loop.time() + self.limits.handshake_timeout
            if not await self._handshake(hard):
                return
        while True:
            payload = await self._next_payload()
            if payload is None:
                return
            await self._take(payload)

    async def _take(self, payload: bytes) -> None:
        """Start handling ``payload`` and the requests already read behind it.

        The CHANGEs of one read go to the handler together (one append, one
        commit, one write of their replies); each CHECK runs on its own.
        Every request holds a slot until it is answered.
        """
        batch: list[tuple[int, ChangeMsg]] = []
        try:
            while True:
                request_id, message = self._decode(payload, _REQUEST_TYPES)
                if batch and self._slots.locked():
                    self._spawn(self._handle_changes(batch))
                    batch = []
                await self._slots.acquire()
                if isinstance(message, ChangeMsg):
                    batch.append((request_id, message))
                else:
                    assert isinstance(message, Check)  # _REQUEST_TYPES holds only these two
                    self._spawn(self._handle_check(request_id, message))
                if not self._ready or len(batch) >= _MAX_BATCH:
                    return
                payload = self._ready.popleft()
        finally:
            if batch:  # also when a later frame was refused: what was taken is answered
                self._spawn(self._handle_changes(batch))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _decode(self, payload: bytes, allowed: frozenset[MsgType]) -> tuple[int, Message]:
        """Validate ``payload``; refuse a type out of place before its fields are parsed."""
        msg_type: int | None = None
        try:
            request_id, msg_type = decode_header(payload)
            if msg_type not in allowed:
                raise ProtocolError(
                    self._misplaced(msg_type, allowed), request_id=request_id, msg_type=msg_type
                )
            return decode(payload, self.limits)
        except ProtocolError as exc:
            self._refused(
                exc.reason, exc.msg_type if exc.msg_type is not None else msg_type, len(payload)
            )
            raise _Close(exc.reason, exc.request_id) from None

    def _misplaced(self, msg_type: MsgType, allowed: frozenset[MsgType]) -> str:
        name = msg_type.name
        if msg_type not in CLIENT_TYPES:
            return f"{name} is sent by the daemon only"
        if allowed == _HELLO_ONLY:
            return f"expected HELLO first, got {name}"
        if allowed == _AUTH_ONLY:
            return f"expected AUTH after HELLO, got {name}"
        if self.needs_auth:
            return f"{name} after the handshake is done"
        return f"{name} is for the TCP transport only"

    def _refused(self, reason: str, msg_type: int | None, length: int) -> None:
        self.counters.frames_refused += 1
        log.warning(
            "ingest_protocol_error",
            transport=self.peer.transport,
            peer=self.peer.description,
            msg_type=_type_name(msg_type),
            length=length,
            reason=reason,
        )

    # --- handshake ------------------------------------------------------------------------

    async def _handshake(self, hard_deadline: float) -> bool:
        psk = self.server._psk
        assert psk is not None
        payload = await self._next_payload(hard_deadline)
        if payload is None:
            return False
        request_id, hello = self._decode(payload, _HELLO_ONLY)
        assert isinstance(hello, Hello)
        daemon_nonce = handshake.new_nonce()
        proof = handshake.daemon_proof(psk, hello.client_nonce, daemon_nonce)
        await self.replies.write(encode(Challenge(daemon_nonce, proof), request_id))
        payload = await self._next_payload(hard_deadline)
        if payload is None:
            return False
        request_id, auth = self._decode(payload, _AUTH_ONLY)
        assert isinstance(auth, Auth)
        if not handshake.verify_client_proof(
            psk, hello.client_nonce, daemon_nonce, auth.client_proof
        ):
            self.counters.auth_failures += 1
            log.warning("ingest_auth_failed", transport="tcp", peer=self.peer.description)
            raise _Close("authentication failed", request_id)
        if not await self.server._authenticated(self):
            raise _Close(_TOO_MANY, request_id)
        self.established = True
        await self.replies.write(encode(AuthOk(), request_id))
        return True

    # --- requests -------------------------------------------------------------------------

    async def _handle_check(self, request_id: int, message: Check) -> None:
        try:
            self.counters.checks_received += 1
            reply = await self._check(message)
            await self.replies.write(encode(reply, request_id))
        finally:
            self._slots.release()

    async def _handle_changes(self, batch: list[tuple[int, ChangeMsg]]) -> None:
        try:
            self.counters.changes_received += len(batch)
            replies = await self._changes([message for _, message in batch])
            await self.replies.write(
                *(encode(reply, rid) for (rid, _), reply in zip(batch, replies, strict=True))
            )
        finally:
            for _ in batch:
                self._slots.release()

    async def _changes(self, messages: list[ChangeMsg]) -> list[AckReply]:
        changes = [_as_change(m) for m in messages]
        try:
            acks = await self.server.handler.store_changes(changes, self.peer)
            if len(acks) != len(changes) or not all(isinstance(a, Ack) for a in acks):
                raise TypeError("the handler did not return one Ack per change")
            codes = [AckCode(ack.status) for ack in acks]
        except Exception as exc:
            self._handler_failed("CHANGE", exc)
            return [_HANDLER_BUSY] * len(messages)
        return [
            AckReply(code, self._safe_reason(ack.reason, m.password))
            if ack.reason or code is not AckCode.STORED
            else _STORED_REPLY
            for code, ack, m in zip(codes, acks, messages, strict=True)
        ]

    async def _check(self, message: Check) -> VerdictReply:
        try:
            result = await self.server.handler.check(_as_candidate(message), self.peer)
            if not isinstance(result, CheckResult):
                raise TypeError("the handler did not return a CheckResult")
            code = VerdictCode(result.verdict)
        except Exception as exc:
            self._handler_failed("CHECK", exc)
            return VerdictReply(VerdictCode.UNDECIDED, "the daemon could not decide")
        return VerdictReply(code, self._safe_reason(result.reason, message.password))

    def _handler_failed(self, what: str, exc: Exception) -> None:
        self.counters.handler_errors += 1
        log.error(
            "ingest_handler_error",
            msg_type=what,
            peer=self.peer.description,
            error=type(exc).__name__,
        )

    def _safe_reason(self, reason: str, password: Secret) -> str:
        """A reason goes to the source and the admin: withheld if it holds the password in
        any of the forms ``adsync.secret`` knows, else one printable line of ``max_field``."""
        if SecretIndex.of(password).found_in(reason):
            return _WITHHELD
        return truncate_utf8(scrub(reason, max_len=None), self.limits.max_field)

    def _slow_reader(self) -> None:
        self.counters.slow_readers_closed += 1
        log.info("ingest_slow_reader_closed", peer=self.peer.description)


def _as_change(m: ChangeMsg) -> Change:
    """A CHANGE as the plugin API's ``Change`` (the GUID read as AD stores it)."""
    guid = uuid.UUID(bytes_le=m.object_guid) if m.object_guid is not None else None
    return Change(
        event_id=m.event_id,
        account=m.account,
        password=m.password,
        changed_at_ms=m.changed_at_ms,
        domain=m.domain,
        source_host=m.source_host,
        rid=m.rid,
        object_guid=guid,
        sequence=m.sequence,
    )


def _as_candidate(m: Check) -> Candidate:
    return Candidate(
        account=m.account,
        password=m.password,
        domain=m.domain,
        full_name=m.full_name,
        set_operation=m.set_operation,
        source_host=m.source_host,
    )


_REQUEST_TYPES: Final = frozenset({MsgType.CHANGE, MsgType.CHECK})
_MAX_BATCH: Final = 512  # CHANGEs handed to the handler in one call
_STORED_REPLY: Final = AckReply(AckCode.STORED)
_HANDLER_BUSY: Final = AckReply(AckCode.BUSY, "the daemon could not store the change; resend later")
_HELLO_ONLY: Final = frozenset({MsgType.HELLO})
_AUTH_ONLY: Final = frozenset({MsgType.AUTH})


def _type_name(msg_type: int | None) -> str | None:
    if msg_type is None:
        return None
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"0x{msg_type:02x}"


def _raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one: every connection is a file, and
    a flood must hit the connection budgets, not EMFILE (which stops all accepting)."""
    if sys.platform == "win32":
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
