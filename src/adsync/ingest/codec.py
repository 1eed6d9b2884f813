"""The filter ⇄ daemon frame codec (docs/ipc.md): pure functions, no I/O.

Each message type is described once, in a field table (``_SPECS``: tag, attribute,
kind, size, required) that both ``encode`` and ``decode`` follow.

Sources spawn a process per password event (the Samba hooks), so this module
and ``client`` import only the standard library, ``adsync.secret`` and
``adsync.verdict``: no pydantic, asyncio or plugin API. The server converts these
messages into the plugin API's ``Change`` / ``Candidate``.

A ``ProtocolError``'s reason is built from fixed words, tag numbers and sizes
only, never from a frame's content, so it can be logged and sent back as is.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeAlias

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


class SealError(Exception):
    """A sealed frame (version 2, ``sealing``) that does not open: changed, replayed or
    reordered. The connection is closed and nothing is answered."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the daemon accepts; the defaults are the spec's."""

    max_frame: int = PROTOCOL_MAX_FRAME  # payload bytes after the length prefix
    max_field: int = 1024  # account, domain, source host, full name, client name, reason
    max_password: int = 1024
    max_connections: int = 64  # established connections, per transport (Unix; TCP after AUTH_OK)
    frame_timeout: float = 10.0  # a frame's bytes must arrive within this of its first byte
    idle_timeout: float = 300.0
    handshake_timeout: float = 5.0
    max_in_flight: int = 256  # pipelined requests per connection being handled at once
    max_handshakes: int = 32  # TCP connections still in the handshake (anyone on the host)
    max_handshakes_per_peer: int = 8  # of those, per peer uid (or address where unknown)

    def __post_init__(self) -> None:
        if not MIN_FRAME <= self.max_frame <= PROTOCOL_MAX_FRAME:
            raise ValueError(f"max_frame must be within {MIN_FRAME}..{PROTOCOL_MAX_FRAME}")
        for name in (
            "max_field",
            "max_password",
            "max_connections",
            "max_handshakes",
            "max_handshakes_per_peer",
            "max_in_flight",
        ):
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
    # Monotonic per source host, across restarts: with changed_at it orders one host's
    # changes, whatever their arrival (docs/ipc.md, "Source order").
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


# --- one field table per message type: what encode writes and decode accepts ---------------


class _Kind(enum.Enum):
    TEXT = enum.auto()  # UTF-8 without NUL, at most max_field bytes; required means non-empty
    PASSWORD = enum.auto()  # UTF-8 without NUL, 1..max_password bytes, held as a Secret
    BYTES = enum.auto()  # raw, of the field's fixed size
    UINT = enum.auto()  # big-endian unsigned, of the field's fixed size
    FLAG = enum.auto()  # one byte, 0 or 1
    STATUS = enum.auto()  # one byte, a value of the message's status enum


@dataclass(frozen=True, slots=True)
class _Field:
    tag: Tag
    attr: str  # the message's attribute
    kind: _Kind
    size: int | None = None  # fixed size on the wire
    required: bool = False  # decode: must be present; encode: always written
    maximum: int | None = None  # UINT: the largest value the daemon can store and format


# changed_at is formatted as a date by every target (year 9999 at most); a sequence is
# stored in a signed 64-bit SQLite column. Beyond those a value could not be queued.
MAX_CHANGED_AT_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_SEQUENCE: Final = 2**63 - 1


def _text(tag: Tag, attr: str, *, required: bool = False) -> _Field:
    return _Field(tag, attr, _Kind.TEXT, required=required)


def _fixed(
    tag: Tag,
    attr: str,
    kind: _Kind,
    size: int,
    *,
    required: bool = False,
    maximum: int | None = None,
) -> _Field:
    return _Field(tag, attr, kind, size, required, maximum)


_PASSWORD: Final = _Field(Tag.PASSWORD, "password", _Kind.PASSWORD, required=True)
_STATUS: Final = _fixed(Tag.STATUS, "status", _Kind.STATUS, 1, required=True)
_REASON: Final = _text(Tag.REASON, "reason")


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one message type travels: its class, fields in wire order, and status enum."""

    msg_type: MsgType
    cls: type[Message]
    fields: tuple[_Field, ...]
    status: type[enum.IntEnum] | None = None

    def by_tag(self) -> dict[int, _Field]:
        return {f.tag: f for f in self.fields}

    def required(self) -> tuple[Tag, ...]:
        return tuple(f.tag for f in self.fields if f.required)

    def write_plan(self) -> tuple[_Write, ...]:
        """Each field with the value for which encode leaves it out (the class default):
        absent optional fields and empty optional text are omitted; a flag is always
        written (docs/ipc.md)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self.cls)}
        return tuple(
            _Write(
                f.tag,
                f.attr,
                _ALWAYS if f.required or f.kind is _Kind.FLAG else defaults[f.attr],
                _to_bytes(f),
            )
            for f in self.fields
        )


_ALWAYS: Final = object()


class _Write(NamedTuple):
    tag: Tag
    attr: str
    omitted: object  # the value that is not written, or _ALWAYS
    to_bytes: Callable[[Any], bytes]


def _to_bytes(f: _Field) -> Callable[[Any], bytes]:
    match f.kind:
        case _Kind.TEXT:
            return str.encode
        case _Kind.PASSWORD:
            return Secret.reveal_bytes
        case _Kind.BYTES:
            return bytes
        case _Kind.UINT:
            size = f.size
            assert size is not None
            return lambda value: int.to_bytes(value, size, "big")
        case _Kind.FLAG | _Kind.STATUS:
            return lambda value: bytes((value,))
    raise AssertionError(f.kind)  # pragma: no cover


_SPECS: Final = (
    _Spec(
        MsgType.HELLO,
        Hello,
        (
            _fixed(Tag.NONCE, "client_nonce", _Kind.BYTES, NONCE_SIZE, required=True),
            _text(Tag.CLIENT_NAME, "client_name"),
        ),
    ),
    _Spec(
        MsgType.CHALLENGE,
        Challenge,
        (
            _fixed(Tag.NONCE, "daemon_nonce", _Kind.BYTES, NONCE_SIZE, required=True),
            _fixed(Tag.DAEMON_PROOF, "daemon_proof", _Kind.BYTES, PROOF_SIZE, required=True),
        ),
    ),
    _Spec(
        MsgType.AUTH,
        Auth,
        (_fixed(Tag.CLIENT_PROOF, "client_proof", _Kind.BYTES, PROOF_SIZE, required=True),),
    ),
    _Spec(MsgType.AUTH_OK, AuthOk, ()),
    _Spec(
        MsgType.CHECK,
        Check,
        (
            _text(Tag.ACCOUNT, "account", required=True),
            _text(Tag.FULL_NAME, "full_name"),
            _PASSWORD,
            _fixed(Tag.SET_OPERATION, "set_operation", _Kind.FLAG, 1),
            _text(Tag.DOMAIN, "domain"),
            _text(Tag.SOURCE_HOST, "source_host"),
        ),
    ),
    _Spec(MsgType.VERDICT, VerdictReply, (_STATUS, _REASON), VerdictCode),
    _Spec(
        MsgType.CHANGE,
        ChangeMsg,
        (
            _text(Tag.ACCOUNT, "account", required=True),
            _PASSWORD,
            _text(Tag.DOMAIN, "domain"),
            _text(Tag.SOURCE_HOST, "source_host"),
            _fixed(Tag.RID, "rid", _Kind.UINT, 4),
            _fixed(Tag.OBJECT_GUID, "object_guid", _Kind.BYTES, GUID_SIZE),
            _fixed(
                Tag.CHANGED_AT,
                "changed_at_ms",
                _Kind.UINT,
                8,
                required=True,
                maximum=MAX_CHANGED_AT_MS,
            ),
            _fixed(Tag.EVENT_ID, "event_id", _Kind.BYTES, EVENT_ID_SIZE, required=True),
            _fixed(Tag.SEQUENCE, "sequence", _Kind.UINT, 8, maximum=MAX_SEQUENCE),
        ),
    ),
    _Spec(MsgType.ACK, AckReply, (_STATUS, _REASON), AckCode),
    _Spec(MsgType.ERROR, ErrorReply, (_REASON,)),
)
_SPEC_OF_TYPE: Final = {spec.msg_type: spec for spec in _SPECS}
_SPEC_OF_CLASS: Final[dict[type, _Spec]] = {spec.cls: spec for spec in _SPECS}
_BY_TAG: Final = {spec.msg_type: spec.by_tag() for spec in _SPECS}
_REQUIRED: Final = {spec.msg_type: spec.required() for spec in _SPECS}
_WRITE_PLAN: Final[dict[type, tuple[MsgType, tuple[_Write, ...]]]] = {
    spec.cls: (spec.msg_type, spec.write_plan()) for spec in _SPECS
}


def message_type(message: Message) -> MsgType:
    return _SPEC_OF_CLASS[type(message)].msg_type


# --- encoding ------------------------------------------------------------------------------

_TLV_HEADER = struct.Struct(">BH")


def encode(message: Message, request_id: int, version: int = VERSION) -> bytes:
    """The whole frame, length prefix included; ``version`` is the connection's (1 or 2)."""
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError("request_id must fit in 64 bits")
    msg_type, plan = _WRITE_PLAN[type(message)]
    parts = [HEADER.pack(MAGIC, version, msg_type, 0, request_id)]
    for tag, attr, omitted, to_bytes in plan:
        value = getattr(message, attr)
        if omitted is not _ALWAYS and value == omitted:
            continue
        raw = to_bytes(value)
        if len(raw) > 0xFFFF:
            raise ValueError(f"field 0x{tag:02x} is longer than 65535 bytes")
        parts += (_TLV_HEADER.pack(tag, len(raw)), raw)
    payload = b"".join(parts)
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

_Fail: TypeAlias = Callable[[str], ProtocolError]


def _utf8(raw: bytes, tag: int, fail: _Fail) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"field 0x{tag:02x} is not valid UTF-8") from None
    if "\x00" in text:
        raise fail(f"field 0x{tag:02x} contains NUL")
    return text


def _field_value(
    f: _Field, raw: bytes, spec: _Spec, limits: Limits, fail: _Fail
) -> str | bytes | int | bool | Secret | enum.IntEnum:
    size = len(raw)
    if f.size is not None and size != f.size:
        raise fail(f"field 0x{f.tag:02x} must be {f.size} bytes, got {size}")
    match f.kind:
        case _Kind.TEXT:
            if size > limits.max_field:
                raise fail(f"field 0x{f.tag:02x} longer than {limits.max_field} bytes")
            if f.required and size == 0:
                raise fail(f"field 0x{f.tag:02x} is empty")
            return _utf8(raw, f.tag, fail)
        case _Kind.PASSWORD:
            if not 1 <= size <= limits.max_password:
                raise fail(f"password must be 1..{limits.max_password} bytes, got {size}")
            return Secret(_utf8(raw, f.tag, fail))
        case _Kind.BYTES:
            return bytes(raw)
        case _Kind.UINT:
            value = int.from_bytes(raw, "big")
            if f.maximum is not None and value > f.maximum:
                raise fail(f"field 0x{f.tag:02x} ({f.attr}) must be at most {f.maximum}")
            return value
        case _Kind.FLAG:
            if raw[0] > 1:
                raise fail(f"field 0x{f.tag:02x} ({f.attr}) must be 0 or 1")
            return raw[0] == 1
        case _Kind.STATUS:
            assert spec.status is not None
            try:
                return spec.status(raw[0])
            except ValueError:
                raise fail(f"unknown {spec.msg_type.name} status") from None
    raise AssertionError(f.kind)  # pragma: no cover


_V1: Final = frozenset({VERSION})


def decode_header(payload: bytes, versions: frozenset[int] = _V1) -> tuple[int, MsgType]:
    """Request id and type, validated; lets a server refuse a type before parsing its fields.

    ``versions`` are those the connection accepts (its own, or 1 and 2 for a first HELLO);
    the frame's is ``payload[4]``."""
    if len(payload) < HEADER_SIZE:
        raise ProtocolError(f"frame of {len(payload)} bytes is shorter than its header")
    magic, version, raw_type, flags, request_id = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if version not in versions:
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


_DEFAULT_LIMITS: Final = Limits()


def decode(
    payload: bytes, limits: Limits | None = None, versions: frozenset[int] = _V1
) -> tuple[int, Message]:
    """Validate one payload (without its length prefix) completely and build its message."""
    limits = limits or _DEFAULT_LIMITS
    request_id, msg_type = decode_header(payload, versions)

    def fail(reason: str) -> ProtocolError:
        return ProtocolError(reason, request_id=request_id, msg_type=msg_type)

    spec = _SPEC_OF_TYPE[msg_type]
    known = _BY_TAG[msg_type]
    seen: dict[int, _Field] = {}
    values: dict[str, Any] = {}  # typed by the table; the class checks nothing itself
    pos = HEADER_SIZE
    end = len(payload)
    while pos < end:
        if end - pos < 3:
            raise fail("truncated field header")
        tag, size = _TLV_HEADER.unpack_from(payload, pos)
        pos += 3
        if size > end - pos:
            raise fail(f"field 0x{tag:02x} overruns the frame")
        raw = payload[pos : pos + size]
        pos += size
        f = known.get(tag)
        if f is None:
            continue  # unknown tags are skipped (forward compatibility)
        if tag in seen:
            raise fail(f"field 0x{tag:02x} repeated")
        seen[tag] = f
        values[f.attr] = _field_value(f, raw, spec, limits, fail)
    for tag in _REQUIRED[msg_type]:
        if tag not in seen:
            raise fail(f"required field 0x{tag:02x} missing")
    return request_id, spec.cls(**values)  # absent optional fields take the class defaults
