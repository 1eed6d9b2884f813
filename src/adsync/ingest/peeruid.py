"""Which local uid owns the other end of a loopback TCP connection (Linux sock_diag).

Every loopback peer has the address 127.0.0.1, so an address says nothing about who
opened a connection; the kernel does know the uid that owns the client socket. One
exact ``SOCK_DIAG_BY_FAMILY`` lookup (netlink, ``inet_diag_req_v2`` without
``NLM_F_DUMP``; linux/inet_diag.h, man 7 sock_diag) asks for the socket whose source
is the peer's address and whose destination is ours, and reads ``idiag_uid`` from the
answer. Unprivileged, O(1) in the kernel (no walk of ``/proc/net/tcp``).

Returns None where that is not available (not Linux, netlink refused, the peer already
closed its socket — the kernel then reports uid 0 for it, which must not count as
root's): the caller then falls back to the peer's address.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from typing import Final

_NETLINK_SOCK_DIAG: Final = 4
_SOCK_DIAG_BY_FAMILY: Final = 20
_NLM_F_REQUEST: Final = 0x01
_NLMSG_ERROR: Final = 2
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid
_REQ = struct.Struct("=BBBxI")
_SOCKID = struct.Struct(">HH16s16sI8s")  # sport, dport, src, dst (big-endian), if, cookie
# inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
_NO_COOKIE: Final = b"\xff" * 8
_ALL_STATES: Final = 0xFFFFFFFF


def _packed(host: str, family: int) -> bytes:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if family == socket.AF_INET6 and address.version == 4:
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    return address.packed.ljust(16, b"\0")


def peer_uid(
    family: int, peer: tuple[str, int], local: tuple[str, int], timeout: float = 0.2
) -> int | None:
    """The uid owning the socket at ``peer`` connected to ``local``, or None if unknown."""
    if not sys.platform.startswith("linux") or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        sockid = _SOCKID.pack(
            peer[1],
            local[1],
            _packed(peer[0], family),
            _packed(local[0], family),
            0,
            _NO_COOKIE,
        )
        body = _REQ.pack(family, socket.IPPROTO_TCP, 0, _ALL_STATES) + sockid
        request = _NLMSG.pack(_NLMSG.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(timeout)
            nl.sendto(request + body, (0, 0))
            answer = nl.recv(8192)
    except (OSError, ValueError):
        return None
    return _uid_from(answer)


def _uid_from(answer: bytes) -> int | None:
    if len(answer) < _NLMSG.size:
        return None
    _length, msg_type, _flags, _seq, _pid = _NLMSG.unpack_from(answer)
    if msg_type == _NLMSG_ERROR or msg_type != _SOCK_DIAG_BY_FAMILY:
        return None
    at = _NLMSG.size + _MSG_HEAD.size + _SOCKID.size
    if len(answer) < at + _MSG_TAIL.size:
        return None
    _expires, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(answer, at)
    if inode == 0:
        return None  # closed by its owner (orphaned, or a time-wait entry, reported as uid 0)
    return int(uid)
