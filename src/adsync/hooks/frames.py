"""The two requests a Samba hook sends (CHECK, CHANGE) and the replies it reads.

A minimal writer and reader of docs/ipc.md frames over the daemon's Unix socket,
built on the constants of ``adsync.ingest.wire`` (one definition of the wire).
It exists because a hook is one process per password event: it must not pay for
the codec's dataclasses, the TCP handshake or the ``socket`` module's enum set-up
(``_socket`` is the same C socket without them). The password travels in a
``bytearray`` that is zeroed once sent.
"""

from __future__ import annotations

import _socket
import struct
import time

from adsync.ingest.wire import HEADER, LENGTH, MAGIC, PROTOCOL_MAX_FRAME, VERSION, MsgType, Tag

_FIELD = struct.Struct(">BH")
_RECV = 4096


class WireError(Exception):
    """The exchange failed; the message names what happened, never a field's content."""


class DaemonTimeout(WireError):
    """No complete answer before the deadline (a hung or overloaded daemon)."""


class DaemonRefused(WireError):
    """The daemon answered ERROR: the request itself was refused (do not resend as is)."""


def _text(out: bytearray, tag: int, value: str | None) -> None:
    if value:
        _raw(out, tag, value.encode("utf-8"))


def _raw(out: bytearray, tag: int, value: bytes | bytearray) -> None:
    out += _FIELD.pack(tag, len(value))
    out += value


def _frame(msg_type: int, body: bytearray) -> bytearray:
    out = bytearray(LENGTH.pack(HEADER.size + len(body)))
    out += HEADER.pack(MAGIC, VERSION, msg_type, 0, 1)
    out += body
    body[:] = bytes(len(body))
    return out


def check_frame(
    *, account: str, password: bytes, full_name: str, domain: str, source_host: str
) -> bytearray:
    """CHECK (request id 1): tags in ascending order, empty optional texts omitted."""
    body = bytearray()
    _text(body, Tag.ACCOUNT, account)
    _text(body, Tag.FULL_NAME, full_name)
    _raw(body, Tag.PASSWORD, password)
    _raw(body, Tag.SET_OPERATION, b"\x00")  # Samba does not tell a reset from a change
    _text(body, Tag.DOMAIN, domain)
    _text(body, Tag.SOURCE_HOST, source_host)
    return _frame(MsgType.CHECK, body)


def change_frame(
    *,
    account: str,
    password: bytes,
    changed_at_ms: int,
    event_id: bytes,
    domain: str,
    source_host: str,
    rid: int | None,
    object_guid_le: bytes,
) -> bytearray:
    """CHANGE (request id 1); ``object_guid_le`` is AD's binary GUID form (docs/ipc.md)."""
    body = bytearray()
    _text(body, Tag.ACCOUNT, account)
    _raw(body, Tag.PASSWORD, password)
    _text(body, Tag.DOMAIN, domain)
    _text(body, Tag.SOURCE_HOST, source_host)
    if rid is not None:
        _raw(body, Tag.RID, rid.to_bytes(4, "big"))
    _raw(body, Tag.OBJECT_GUID, object_guid_le)
    _raw(body, Tag.CHANGED_AT, changed_at_ms.to_bytes(8, "big"))
    _raw(body, Tag.EVENT_ID, event_id)
    return _frame(MsgType.CHANGE, body)


def parse_reply(payload: bytes) -> tuple[int, int, str]:
    """(type, status, reason) of a VERDICT, ACK or ERROR payload; ``WireError`` if malformed."""
    if len(payload) < HEADER.size:
        raise WireError("reply shorter than a header")
    magic, version, msg_type, _flags, _request_id = HEADER.unpack_from(payload)
    if magic != MAGIC or version != VERSION:
        raise WireError("reply is not an adsync v1 frame")
    status, reason = -1, ""
    at = HEADER.size
    while at < len(payload):
        if at + _FIELD.size > len(payload):
            raise WireError("truncated field header in the reply")
        tag, size = _FIELD.unpack_from(payload, at)
        at += _FIELD.size
        value = payload[at : at + size]
        if len(value) != size:
            raise WireError("a field overruns the reply")
        at += size
        if tag == Tag.STATUS and size == 1:
            status = value[0]
        elif tag == Tag.REASON:
            reason = value.decode("utf-8", "replace")
    if msg_type == MsgType.ERROR:
        raise DaemonRefused(f"the daemon refused the request: {reason}")
    if msg_type not in (MsgType.VERDICT, MsgType.ACK) or status not in (0, 1, 2):
        raise WireError("unexpected reply from the daemon")
    return msg_type, status, reason


def _connect(path: str, deadline: float, timeout: float) -> _socket.socket:
    """Connect by the deadline; a full backlog (EAGAIN, a stalled daemon) or a refusal
    (ECONNREFUSED, a restarting one) is retried, 5 ms doubling up to 100 ms."""
    pause = 0.005
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 1e-6))
            sock.connect(path)
            return sock
        except (BlockingIOError, ConnectionRefusedError):
            sock.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonTimeout(f"no answer from {path} in {timeout:g}s") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)
        except TimeoutError:
            sock.close()
            raise DaemonTimeout(f"no answer from {path} in {timeout:g}s") from None
        except BaseException:
            sock.close()
            raise


def exchange(path: str, frame: bytearray, timeout: float) -> tuple[int, str]:
    """Send one frame (zeroed afterwards) and read its reply by a deadline: (status, reason)."""
    deadline = time.monotonic() + timeout
    sock: _socket.socket | None = None
    try:
        sock = _connect(path, deadline, timeout)
        sock.sendall(frame)
        frame[:] = bytes(len(frame))
        data = b""
        while True:
            if len(data) >= LENGTH.size:
                (size,) = LENGTH.unpack_from(data)
                if not HEADER.size <= size <= PROTOCOL_MAX_FRAME:
                    raise WireError("reply length out of bounds")
                if len(data) >= LENGTH.size + size:
                    _type, status, reason = parse_reply(data[LENGTH.size : LENGTH.size + size])
                    return status, reason
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonTimeout(f"no answer from {path} in {timeout:g}s")
            sock.settimeout(left)
            chunk = sock.recv(_RECV)
            if not chunk:
                raise WireError(f"{path} closed the connection before answering")
            data += chunk
    except TimeoutError:
        raise DaemonTimeout(f"no answer from {path} in {timeout:g}s") from None
    finally:
        frame[:] = bytes(len(frame))
        if sock is not None:
            sock.close()
