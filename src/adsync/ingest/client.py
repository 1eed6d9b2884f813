"""A blocking ingest client: ``adsync test``, the Samba hooks, tests and benchmarks.

Plain sockets with explicit deadlines and no asyncio: a hook is a short-lived
process and must start fast (only the standard library and ``adsync.secret``
are imported). On TCP the client checks the daemon's proof before it sends
anything else, so it never hands a password to a process without the key.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

from adsync.ingest import handshake
from adsync.ingest.codec import (
    AckReply,
    Auth,
    AuthOk,
    Challenge,
    ChangeMsg,
    Check,
    ErrorReply,
    FrameSplitter,
    Hello,
    Limits,
    Message,
    ProtocolError,
    VerdictReply,
    decode,
    encode,
)
from adsync.secret import Secret

if TYPE_CHECKING:
    import uuid

CLIENT_NAME: Final = "adsync-python/1"
_RECV_SIZE: Final = 65536
_FIRST_PAUSE: Final = 0.005  # connect retries: 5 ms, doubling up to 100 ms
_MAX_PAUSE: Final = 0.1
_T = TypeVar("_T")


class IngestError(Exception):
    """The exchange with the daemon failed (the message never holds a password)."""


class DaemonAuthError(IngestError):
    """The peer on the TCP port could not prove the pre-shared key; nothing was sent to it."""


class DaemonError(IngestError):
    """The daemon answered ERROR and closed the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the daemon refused the request: {reason}")
        self.reason = reason


class IngestTimeout(IngestError, TimeoutError):
    """No complete answer before the deadline; the connection is closed."""


class ConnectionClosed(IngestError):
    """The daemon closed the connection before answering."""


class IngestClient:
    """One connection to the daemon. Use ``unix()`` or ``tcp()``; close it (or use ``with``)."""

    def __init__(self, sock: socket.socket, *, timeout: float, peer: str) -> None:
        self._sock: socket.socket | None = sock
        self.timeout = timeout
        self.peer = peer
        self._splitter = FrameSplitter()
        self._limits = Limits()
        self._next_id = 1
        self._stash: dict[int, Message] = {}

    # --- connecting -----------------------------------------------------------------------

    @classmethod
    def unix(cls, path: Path | str, *, timeout: float = 10.0) -> IngestClient:
        """Connect to the daemon's socket. A full listen backlog (EAGAIN: the daemon is
        stalled) or a refusal (ECONNREFUSED: it is restarting) is retried until the deadline."""
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(str(path))
            except TimeoutError:
                sock.close()
                raise IngestTimeout(f"connecting to {path} timed out") from None
            except (BlockingIOError, ConnectionRefusedError) as exc:
                sock.close()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IngestTimeout(
                        f"connecting to {path}: {exc.strerror} until the deadline"
                    ) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, _MAX_PAUSE)
                continue
            except BaseException:
                sock.close()
                raise
            return cls(sock, timeout=timeout, peer=str(path))

    @classmethod
    def tcp(
        cls,
        host: str,
        port: int,
        psk: bytes,
        *,
        timeout: float = 10.0,
        client_name: str = CLIENT_NAME,
    ) -> IngestClient:
        """Connect and run the mutual handshake; ``DaemonAuthError`` if the daemon lacks the key."""
        deadline = time.monotonic() + timeout
        try:
            sock = socket.create_connection((host, port), timeout=_remaining(deadline))
        except TimeoutError:
            raise IngestTimeout(f"connecting to {host}:{port} timed out") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(sock, timeout=timeout, peer=f"{host}:{port}")
        try:
            client._handshake(psk, client_name, deadline)
        except BaseException:
            client.close()
            raise
        return client

    def _handshake(self, psk: bytes, client_name: str, deadline: float) -> None:
        client_nonce = handshake.new_nonce()
        rid = self.send(Hello(client_nonce, client_name))
        challenge = self._expect(rid, Challenge, deadline)
        if not handshake.verify_daemon_proof(
            psk, client_nonce, challenge.daemon_nonce, challenge.daemon_proof
        ):
            self.close()
            raise DaemonAuthError(
                f"the peer at {self.peer} could not prove the pre-shared key; "
                "nothing was sent to it"
            )
        proof = handshake.client_proof(psk, client_nonce, challenge.daemon_nonce)
        rid = self.send(Auth(proof))
        self._expect(rid, AuthOk, deadline)

    # --- requests -------------------------------------------------------------------------

    def change(
        self,
        *,
        account: str,
        password: Secret,
        changed_at_ms: int,
        event_id: bytes,
        domain: str = "",
        source_host: str | None = None,
        rid: int | None = None,
        object_guid: uuid.UUID | bytes | None = None,
        sequence: int | None = None,
    ) -> AckReply:
        """Send one CHANGE and wait for its ACK (status 0: stored durably)."""
        message = change_message(
            account=account,
            password=password,
            changed_at_ms=changed_at_ms,
            event_id=event_id,
            domain=domain,
            source_host=source_host,
            rid=rid,
            object_guid=object_guid,
            sequence=sequence,
        )
        request_id = self.send(message)
        return self._expect(request_id, AckReply, time.monotonic() + self.timeout)

    def check(
        self,
        *,
        account: str,
        password: Secret,
        full_name: str = "",
        set_operation: bool = False,
        domain: str = "",
        source_host: str | None = None,
    ) -> VerdictReply:
        """Ask whether ``password`` may be set; the VERDICT's status is a ``VerdictCode``."""
        _require_secret(password)
        message = Check(account, password, full_name, set_operation, domain, source_host)
        request_id = self.send(message)
        return self._expect(request_id, VerdictReply, time.monotonic() + self.timeout)

    def pipeline_changes(
        self, changes: Iterable[ChangeMsg], *, window: int = 256
    ) -> list[AckReply]:
        """Send many CHANGEs without waiting, at most ``window`` unanswered; ACKs in input order."""
        if window < 1:
            raise ValueError("window must be at least 1")
        ids: list[int] = []
        pending: set[int] = set()
        acks: dict[int, AckReply] = {}

        def collect_one() -> None:
            request_id, reply = self.receive(time.monotonic() + self.timeout)
            if request_id not in pending:
                raise IngestError(f"reply for unknown request id {request_id}")
            pending.discard(request_id)
            acks[request_id] = _as(reply, AckReply)

        for message in changes:
            while len(pending) >= window:
                collect_one()
            request_id = self.send(message)
            ids.append(request_id)
            pending.add(request_id)
        while pending:
            collect_one()
        return [acks[i] for i in ids]

    # --- frames ---------------------------------------------------------------------------

    def send(self, message: Message) -> int:
        """Send one frame; returns its request id (for ``receive``)."""
        sock = self._open_socket()
        request_id = self._next_id
        self._next_id += 1
        frame = encode(message, request_id)
        sock.settimeout(self.timeout)
        try:
            sock.sendall(frame)
        except TimeoutError:
            self.close()
            raise IngestTimeout(f"sending to {self.peer} timed out") from None
        except OSError:
            self.close()
            raise
        return request_id

    def receive(self, deadline: float) -> tuple[int, Message]:
        """The next reply frame, by the monotonic ``deadline``. An ERROR raises ``DaemonError``."""
        while True:
            sock = self._open_socket()
            if self._stash:
                request_id = next(iter(self._stash))
                return request_id, self._stash.pop(request_id)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                data = sock.recv(_RECV_SIZE)
            except TimeoutError:
                self.close()
                raise IngestTimeout(f"no answer from {self.peer} in time") from None
            except OSError:
                self.close()
                raise
            if not data:
                self.close()
                raise ConnectionClosed(f"{self.peer} closed the connection")
            try:
                for payload in self._splitter.feed(data):
                    request_id, message = decode(payload, self._limits)
                    if isinstance(message, ErrorReply):
                        self.close()
                        raise DaemonError(message.reason)
                    self._stash[request_id] = message
            except ProtocolError as exc:
                self.close()
                raise IngestError(f"malformed reply from {self.peer}: {exc.reason}") from None

    def _expect(self, request_id: int, kind: type[_T], deadline: float) -> _T:
        if request_id in self._stash:
            return _as(self._stash.pop(request_id), kind)
        while True:
            got_id, message = self.receive(deadline)
            if got_id == request_id:
                return _as(message, kind)
            self._stash[got_id] = message
            if len(self._stash) > 4096:
                self.close()
                raise IngestError("too many unexpected replies")

    def _open_socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionClosed("the connection is closed")
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def change_message(
    *,
    account: str,
    password: Secret,
    changed_at_ms: int,
    event_id: bytes,
    domain: str = "",
    source_host: str | None = None,
    rid: int | None = None,
    object_guid: uuid.UUID | bytes | None = None,
    sequence: int | None = None,
) -> ChangeMsg:
    """A CHANGE message; ``object_guid`` as a UUID is sent in AD's binary (``bytes_le``) form."""
    _require_secret(password)
    guid = (
        object_guid
        if object_guid is None or isinstance(object_guid, bytes)
        else object_guid.bytes_le
    )
    return ChangeMsg(
        account=account,
        password=password,
        changed_at_ms=changed_at_ms,
        event_id=event_id,
        domain=domain,
        source_host=source_host,
        rid=rid,
        object_guid=guid,
        sequence=sequence,
    )


def _require_secret(password: object) -> None:
    if not isinstance(password, Secret):
        raise TypeError("password must be an adsync.secret.Secret")


def _as(message: Message, kind: type[_T]) -> _T:
    if not isinstance(message, kind):
        raise IngestError(f"unexpected reply {type(message).__name__}, wanted {kind.__name__}")
    return message


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise IngestTimeout("deadline passed")
    return left
