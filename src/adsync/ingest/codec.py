"""The filter ⇄ daemon frame codec (docs/ipc.md): pure functions, no I/O.

Sources spawn a process per password event (the Samba hooks), so this module
and ``client`` import only the standard library and ``adsync.secret``: no
pydantic, asyncio or plugin API. The server converts these messages into the
plugin API's ``Change`` / ``Candidate``.

A ``ProtocolError``'s reason is built from fixed words, tag numbers and sizes
only, never from a frame's content, so it can be logged and sent back as is.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from adsync.ingest.wire import (
    EVENT_ID_SIZE,
    GUID_SIZE,
    HEADER,
    HEADER_SIZE,
    LENGTH,
    MAGIC,
    MAX_REQUEST_ID,
    MIN_FRAME,
    NONCE_SIZE,
    PROOF_SIZE,
    PROTOCOL_MAX_FRAME,
    VERSION,
    AckCode,
    MsgType,
    Tag,
    VerdictCode,
)
from adsync.secret import Secret


class ProtocolError(ValueError):
    """A frame that breaks the protocol. ``reason`` never holds frame content.

    ``request_id`` is the frame's id when its header could be read (the ERROR
    reply carries it), else 0.
    """

    def __init__(self, reason: str, *, request_id: int = 0, msg_type: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id
        self.msg_type = msg_type


@dataclass(frozen=True, slots=True)
class Limits:
    """What the daemon accepts; the defaults are the spec's."""

    max_frame: int = PROTOCOL_MAX_FRAME  # payload bytes after the length prefix
    max_field: int = 1024  # account, domain, source host, full name, client name, reason
    max_password: int = 1024
    max_connections: int = 64  # both transports together
    frame_timeout: float = 10.0  # a frame's bytes must arrive within this of its first byte
    idle_timeout: float = 300.0
    handshake_timeout: float = 5.0
    max_in_flight: int = 256  # pipelined requests per connection being handled at once

    def __post_init__(self) -> None:
        if not MIN_FRAME <= self.max_frame <= PROTOCOL_MAX_FRAME:
            raise ValueError(f"max_frame must be within {MIN_FRAME}..{PROTOCOL_MAX_FRAME}")
        for name in ("max_field", "max_password", "max_connections", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("frame_timeout", "idle_timeout", "handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    client_nonce: bytes
    client_name: str = ""


@dataclass(frozen=True, slots=True)
class Challenge:
    daemon_nonce: bytes
    daemon_proof: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    client_proof: bytes


@dataclass(frozen=True, slots=True)
class AuthOk:
    pass


@dataclass(frozen=True, slots=True)
class Check:
    account: str
    password: Secret
    full_name: str = ""
    set_operation: bool = False  # True: an administrator's reset
    domain: str = ""
    source_host: str | None = None


@dataclass(frozen=True, slots=True)
class VerdictReply:
    status: VerdictCode
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChangeMsg:
    account: str
    password: Secret
    changed_at_ms: int
    event_id: bytes
    domain: str = ""
    source_host: str | None = None
    rid: int | None = None
    object_guid: bytes | None = None  # 16 bytes, the binary objectGUID as AD stores it
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class AckReply:
    status: AckCode
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ErrorReply:
    reason: str = ""


Message: TypeAlias = (
    Hello | Challenge | Auth | AuthOk | Check | VerdictReply | ChangeMsg | AckReply | ErrorReply
)

_TYPE_OF: Final[dict[type, MsgType]] = {
    Hello: MsgType.HELLO,
    Challenge: MsgType.CHALLENGE,
    Auth: MsgType.AUTH,
    AuthOk: MsgType.AUTH_OK,
    Check: MsgType.CHECK,
    VerdictReply: MsgType.VERDICT,
    ChangeMsg: MsgType.CHANGE,
    AckReply: MsgType.ACK,
    ErrorReply: MsgType.ERROR,
}


def message_type(message: Message) -> MsgType:
    return _TYPE_OF[type(message)]


# --- encoding ------------------------------------------------------------------------------


def _tlv(out: list[bytes], tag: Tag, value: bytes) -> None:
    if len(value) > 0xFFFF:
        raise ValueError(f"field 0x{tag:02x} is longer than 65535 bytes")
    out.append(struct.pack(">BH", tag, len(value)))
    out.append(value)


def _fields(message: Message) -> list[bytes]:
    out: list[bytes] = []
    match message:
        case Hello():
            _tlv(out, Tag.NONCE, message.client_nonce)
            if message.client_name:
                _tlv(out, Tag.CLIENT_NAME, message.client_name.encode())
        case Challenge():
            _tlv(out, Tag.NONCE, message.daemon_nonce)
            _tlv(out, Tag.DAEMON_PROOF, message.daemon_proof)
        case Auth():
            _tlv(out, Tag.CLIENT_PROOF, message.client_proof)
        case AuthOk():
            pass
        case Check():
            _tlv(out, Tag.ACCOUNT, message.account.encode())
            if message.full_name:
                _tlv(out, Tag.FULL_NAME, message.full_name.encode())
            _tlv(out, Tag.PASSWORD, message.password.reveal_bytes())
            _tlv(out, Tag.SET_OPERATION, b"\x01" if message.set_operation else b"\x00")
            if message.domain:
                _tlv(out, Tag.DOMAIN, message.domain.encode())
            if message.source_host is not None:
                _tlv(out, Tag.SOURCE_HOST, message.source_host.encode())
        case ChangeMsg():
            _tlv(out, Tag.ACCOUNT, message.account.encode())
            _tlv(out, Tag.PASSWORD, message.password.reveal_bytes())
            if message.domain:
                _tlv(out, Tag.DOMAIN, message.domain.encode())
            if message.source_host is not None:
                _tlv(out, Tag.SOURCE_HOST, message.source_host.encode())
            if message.rid is not None:
                _tlv(out, Tag.RID, struct.pack(">I", message.rid))
            if message.object_guid is not None:
                _tlv(out, Tag.OBJECT_GUID, message.object_guid)
            _tlv(out, Tag.CHANGED_AT, struct.pack(">Q", message.changed_at_ms))
            _tlv(out, Tag.EVENT_ID, message.event_id)
            if message.sequence is not None:
                _tlv(out, Tag.SEQUENCE, struct.pack(">Q", message.sequence))
        case VerdictReply() | AckReply():
            _tlv(out, Tag.STATUS, bytes([int(message.status)]))
            if message.reason:
                _tlv(out, Tag.REASON, message.reason.encode())
        case ErrorReply():
            if message.reason:
                _tlv(out, Tag.REASON, message.reason.encode())
    return out


def encode(message: Message, request_id: int) -> bytes:
    """The whole frame, length prefix included."""
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError("request_id must fit in 64 bits")
    header = HEADER.pack(MAGIC, VERSION, message_type(message), 0, request_id)
    payload = b"".join([header, *_fields(message)])
    if len(payload) > PROTOCOL_MAX_FRAME:
        raise ValueError("message does not fit in one frame")
    return LENGTH.pack(len(payload)) + payload


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 on a character boundary."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


# --- splitting a byte stream into payloads -------------------------------------------------


class FrameSplitter:
    """Bytes in, complete payloads out; a length out of bounds fails as soon as it is known.

    Payloads completed before a bad length are returned first; the error is then
    raised by the next ``feed`` (``failed`` tells a reader not to wait for more bytes).
    """

    __slots__ = ("_buf", "_error", "_max_frame", "_need")

    def __init__(self, max_frame: int = PROTOCOL_MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max_frame = max_frame
        self._need: int | None = None  # payload length once the prefix is known
        self._error: ProtocolError | None = None

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has arrived (the frame deadline is running)."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0  # consumed bytes; the buffer is compacted once per call, not per frame
        try:
            while True:
                if self._need is None:
                    if len(buf) - pos < LENGTH.size:
                        return out
                    (length,) = LENGTH.unpack_from(buf, pos)
                    if not MIN_FRAME <= length <= self._max_frame:
                        pos = len(buf)
                        self._error = ProtocolError(
                            f"frame length {length} outside {MIN_FRAME}..{self._max_frame}"
                        )
                        if out:
                            return out
                        raise self._error
                    self._need = length
                end = pos + LENGTH.size + self._need
                if len(buf) < end:
                    return out
                out.append(bytes(buf[pos + LENGTH.size : end]))
                pos = end
                self._need = None
        finally:
            if pos:
                del buf[:pos]


# --- decoding ------------------------------------------------------------------------------

_KIND_STR = "str"
_KIND_SECRET_TEXT = "secret_text"  # noqa: S105 (a kind name, not a password)

# per type: tag -> (kind, fixed size or None)
_STR = (_KIND_STR, None)
_KNOWN: Final[dict[MsgType, dict[int, tuple[str, int | None]]]] = {
    MsgType.HELLO: {Tag.NONCE: ("bytes", NONCE_SIZE), Tag.CLIENT_NAME: _STR},
    MsgType.CHALLENGE: {
        Tag.NONCE: ("bytes", NONCE_SIZE),
        Tag.DAEMON_PROOF: ("bytes", PROOF_SIZE),
    },
    MsgType.AUTH: {Tag.CLIENT_PROOF: ("bytes", PROOF_SIZE)},
    MsgType.AUTH_OK: {},
    MsgType.CHECK: {
        Tag.ACCOUNT: _STR,
        Tag.FULL_NAME: _STR,
        Tag.PASSWORD: (_KIND_SECRET_TEXT, None),
        Tag.SET_OPERATION: ("u8", 1),
        Tag.DOMAIN: _STR,
        Tag.SOURCE_HOST: _STR,
    },
    MsgType.VERDICT: {Tag.STATUS: ("u8", 1), Tag.REASON: _STR},
    MsgType.CHANGE: {
        Tag.ACCOUNT: _STR,
        Tag.PASSWORD: (_KIND_SECRET_TEXT, None),
        Tag.DOMAIN: _STR,
        Tag.SOURCE_HOST: _STR,
        Tag.RID: ("uint", 4),
        Tag.OBJECT_GUID: ("bytes", GUID_SIZE),
        Tag.CHANGED_AT: ("uint", 8),
        Tag.EVENT_ID: ("bytes", EVENT_ID_SIZE),
        Tag.SEQUENCE: ("uint", 8),
    },
    MsgType.ACK: {Tag.STATUS: ("u8", 1), Tag.REASON: _STR},
    MsgType.ERROR: {Tag.REASON: _STR},
}

_REQUIRED: Final[dict[MsgType, tuple[Tag, ...]]] = {
    MsgType.HELLO: (Tag.NONCE,),
    MsgType.CHALLENGE: (Tag.NONCE, Tag.DAEMON_PROOF),
    MsgType.AUTH: (Tag.CLIENT_PROOF,),
    MsgType.CHECK: (Tag.ACCOUNT, Tag.PASSWORD),
    MsgType.VERDICT: (Tag.STATUS,),
    MsgType.CHANGE: (Tag.ACCOUNT, Tag.PASSWORD, Tag.CHANGED_AT, Tag.EVENT_ID),
    MsgType.ACK: (Tag.STATUS,),
}

_NONEMPTY: Final = frozenset({Tag.ACCOUNT})

FieldValue: TypeAlias = str | bytes | int | Secret


@dataclass(slots=True)
class _Fields:
    values: dict[int, FieldValue] = field(default_factory=dict)

    def str_(self, tag: Tag, default: str = "") -> str:
        value = self.values.get(tag, default)
        assert isinstance(value, str)
        return value

    def opt_str(self, tag: Tag) -> str | None:
        value = self.values.get(tag)
        assert value is None or isinstance(value, str)
        return value

    def bytes_(self, tag: Tag) -> bytes:
        value = self.values[tag]
        assert isinstance(value, bytes)
        return value

    def opt_bytes(self, tag: Tag) -> bytes | None:
        value = self.values.get(tag)
        assert value is None or isinstance(value, bytes)
        return value

    def int_(self, tag: Tag) -> int:
        value = self.values[tag]
        assert isinstance(value, int)
        return value

    def opt_int(self, tag: Tag) -> int | None:
        value = self.values.get(tag)
        assert value is None or isinstance(value, int)
        return value

    def secret(self, tag: Tag) -> Secret:
        value = self.values[tag]
        assert isinstance(value, Secret)
        return value


_Fail: TypeAlias = Callable[[str], ProtocolError]


def _text(raw: bytes, tag: int, fail: _Fail) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"field 0x{tag:02x} is not valid UTF-8") from None
    if "\x00" in text:
        raise fail(f"field 0x{tag:02x} contains NUL")
    return text


def decode_header(payload: bytes) -> tuple[int, MsgType]:
    """Request id and type, validated; lets a server refuse a type before parsing its fields."""
    if len(payload) < HEADER_SIZE:
        raise ProtocolError(f"frame of {len(payload)} bytes is shorter than its header")
    magic, version, raw_type, flags, request_id = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if version != VERSION:
        raise ProtocolError(f"unsupported version {version}", request_id=request_id)
    try:
        msg_type = MsgType(raw_type)
    except ValueError:
        raise ProtocolError(
            f"unknown message type 0x{raw_type:02x}", request_id=request_id
        ) from None
    if flags != 0:
        raise ProtocolError(
            f"flags must be 0, got 0x{flags:04x}", request_id=request_id, msg_type=msg_type
        )
    return request_id, msg_type


def decode(payload: bytes, limits: Limits | None = None) -> tuple[int, Message]:
    """Validate one payload (without its length prefix) completely and build its message."""
    limits = limits or Limits()
    request_id, msg_type = decode_header(payload)

    def fail(reason: str) -> ProtocolError:
        return ProtocolError(reason, request_id=request_id, msg_type=msg_type)

    known = _KNOWN[msg_type]
    fields = _Fields()
    pos = HEADER_SIZE
    end = len(payload)
    while pos < end:
        if end - pos < 3:
            raise fail("truncated field header")
        tag = payload[pos]
        (size,) = struct.unpack_from(">H", payload, pos + 1)
        pos += 3
        if size > end - pos:
            raise fail(f"field 0x{tag:02x} overruns the frame")
        raw = payload[pos : pos + size]
        pos += size
        spec = known.get(tag)
        if spec is None:
            continue  # unknown tags are skipped (forward compatibility)
        if tag in fields.values:
            raise fail(f"field 0x{tag:02x} repeated")
        kind, fixed = spec
        if fixed is not None and size != fixed:
            raise fail(f"field 0x{tag:02x} must be {fixed} bytes, got {size}")
        value: FieldValue
        if kind == _KIND_STR:
            if size > limits.max_field:
                raise fail(f"field 0x{tag:02x} longer than {limits.max_field} bytes")
            if tag in _NONEMPTY and size == 0:
                raise fail(f"field 0x{tag:02x} is empty")
            value = _text(raw, tag, fail)
        elif kind == _KIND_SECRET_TEXT:
            if not 1 <= size <= limits.max_password:
                raise fail(f"password must be 1..{limits.max_password} bytes, got {size}")
            value = Secret(_text(raw, tag, fail))
        elif kind == "u8":
            value = raw[0]
        elif kind == "uint":
            value = int.from_bytes(raw, "big")
        else:
            value = bytes(raw)
        fields.values[tag] = value
    for tag in _REQUIRED.get(msg_type, ()):
        if tag not in fields.values:
            raise fail(f"required field 0x{tag:02x} missing")
    return request_id, _build(msg_type, fields, fail)


def _build(msg_type: MsgType, f: _Fields, fail: _Fail) -> Message:
    match msg_type:
        case MsgType.HELLO:
            return Hello(f.bytes_(Tag.NONCE), f.str_(Tag.CLIENT_NAME))
        case MsgType.CHALLENGE:
            return Challenge(f.bytes_(Tag.NONCE), f.bytes_(Tag.DAEMON_PROOF))
        case MsgType.AUTH:
            return Auth(f.bytes_(Tag.CLIENT_PROOF))
        case MsgType.AUTH_OK:
            return AuthOk()
        case MsgType.CHECK:
            set_op = f.values.get(Tag.SET_OPERATION, 0)
            if set_op not in (0, 1):
                raise fail("field 0x13 (set_operation) must be 0 or 1")
            return Check(
                account=f.str_(Tag.ACCOUNT),
                password=f.secret(Tag.PASSWORD),
                full_name=f.str_(Tag.FULL_NAME),
                set_operation=set_op == 1,
                domain=f.str_(Tag.DOMAIN),
                source_host=f.opt_str(Tag.SOURCE_HOST),
            )
        case MsgType.CHANGE:
            return ChangeMsg(
                account=f.str_(Tag.ACCOUNT),
                password=f.secret(Tag.PASSWORD),
                changed_at_ms=f.int_(Tag.CHANGED_AT),
                event_id=f.bytes_(Tag.EVENT_ID),
                domain=f.str_(Tag.DOMAIN),
                source_host=f.opt_str(Tag.SOURCE_HOST),
                rid=f.opt_int(Tag.RID),
                object_guid=f.opt_bytes(Tag.OBJECT_GUID),
                sequence=f.opt_int(Tag.SEQUENCE),
            )
        case MsgType.VERDICT:
            try:
                verdict = VerdictCode(f.int_(Tag.STATUS))
            except ValueError:
                raise fail("unknown VERDICT status") from None
            return VerdictReply(verdict, f.str_(Tag.REASON))
        case MsgType.ACK:
            try:
                ack = AckCode(f.int_(Tag.STATUS))
            except ValueError:
                raise fail("unknown ACK status") from None
            return AckReply(ack, f.str_(Tag.REASON))
        case MsgType.ERROR:
            return ErrorReply(f.str_(Tag.REASON))
    raise AssertionError(msg_type)  # pragma: no cover
