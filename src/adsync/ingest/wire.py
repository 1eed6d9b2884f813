"""The wire's constants and enums (docs/ipc.md), one definition each (VerdictCode is
``adsync.verdict.Verdict``, shared with the plugin API).

Standard library only (``enum``, ``struct``): the codec builds on it, and the Samba hooks,
which start a process per password event, import it without the codec's dataclasses.
"""

from __future__ import annotations

import enum
import struct

from adsync.verdict import Verdict

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a hook ~5 ms
if TYPE_CHECKING:
    from typing import Final

MAGIC: Final = b"ADSY"
VERSION: Final = 1  # cleartext frames: the Unix socket, and TCP only with allow_unsealed_v1
SEALED_VERSION: Final = 2  # TCP: the handshake in clear, then every frame sealed (sealing.py)
HEADER = struct.Struct(">4sBBHQ")  # magic, version, type, flags, request_id
HEADER_SIZE: Final = HEADER.size  # 16: the smallest possible frame
LENGTH = struct.Struct(">I")
MIN_FRAME: Final = HEADER_SIZE
PROTOCOL_MAX_FRAME: Final = 65536
MAX_REQUEST_ID: Final = (1 << 64) - 1
NONCE_SIZE: Final = 32
PROOF_SIZE: Final = 32
EVENT_ID_SIZE: Final = 16
GUID_SIZE: Final = 16


class MsgType(enum.IntEnum):
    HELLO = 0x01
    CHALLENGE = 0x02
    AUTH = 0x03
    AUTH_OK = 0x04
    CHECK = 0x10
    VERDICT = 0x11
    CHANGE = 0x20
    ACK = 0x21
    ERROR = 0x7F


CLIENT_TYPES: Final = frozenset({MsgType.HELLO, MsgType.AUTH, MsgType.CHECK, MsgType.CHANGE})
"""Types a source may send; the others are daemon → client only."""


class Tag(enum.IntEnum):
    NONCE = 0x01
    CLIENT_NAME = 0x02
    DAEMON_PROOF = 0x03
    CLIENT_PROOF = 0x04
    ACCOUNT = 0x10
    FULL_NAME = 0x11
    PASSWORD = 0x12
    SET_OPERATION = 0x13
    DOMAIN = 0x14
    SOURCE_HOST = 0x15
    RID = 0x16
    OBJECT_GUID = 0x17
    CHANGED_AT = 0x18
    EVENT_ID = 0x19
    SEQUENCE = 0x1A  # u64, monotonic per source host (docs/ipc.md, "Source order")
    STATUS = 0x20
    REASON = 0x21


class AckCode(enum.IntEnum):
    """ACK status on the wire; the ingest handler's ``AckStatus`` is this enum."""

    STORED = 0
    REFUSED = 1
    BUSY = 2


VerdictCode = Verdict
"""VERDICT status on the wire: the plugin API's ``Verdict`` itself (``adsync.verdict``)."""
