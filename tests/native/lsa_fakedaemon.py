"""A fake daemon that speaks the wire protocol byte for byte (TCP, PSK handshake of
version 2, then sealed frames).

It stands in where the real daemon cannot show a behaviour: a daemon that never answers
(the filter's deadline), one that does not know the key (the filter must send no
password), ACK busy on demand. It records every byte it received and the changes as
digests (never the passwords).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import lsa_wire as wire
from cryptography.exceptions import InvalidTag


@dataclass(frozen=True)
class SeenChange:
    account: str
    password_sha256: str
    event_id: bytes
    seq: int
    changed_at: int
    rid: int | None
    fields: tuple[int, ...]


class FakeDaemon:
    def __init__(
        self,
        psk: bytes | None,
        *,
        verdict: int | None = 0,
        ack: Callable[[SeenChange], int] | None = None,
        port: int = 0,
        drop_at: tuple[int, ...] = (),
        mangle_ack: str | None = None,
    ) -> None:
        """psk None: a stranger on the port (cannot prove the key). verdict None: silent.
        mangle_ack "flip": the first ACK goes out with a ciphertext bit flipped; "replay":
        the second ACK of the first connection is the first one's sealed bytes again."""
        self.psk = psk
        self.verdict = verdict
        self.ack = ack or (lambda change: 0)
        self.received = bytearray()  # every byte from every connection
        self.frame_types: list[int] = []
        self.changes: list[SeenChange] = []
        self.checks: list[dict[str, object]] = []
        self.errors: list[str] = []
        self.seal_failures = 0
        self.handshakes = 0
        self.drop_at = set(drop_at)  # the n-th CHANGE frames (1-based) that get no ACK
        self.mangle_ack = mangle_ack
        self.mangled = 0  # ACKs sent changed or replayed
        self._acks_sent: list[bytes] = []
        self._change_frames = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def __enter__(self) -> FakeDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_changes(self, count: int, within: float) -> list[SeenChange]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.changes) >= count:
                    return list(self.changes)
            time.sleep(0.05)
        with self._lock:
            return list(self.changes)

    # ---- server ----
    def _serve(self) -> None:
        self._sock.settimeout(0.1)  # close() does not wake a blocked accept() on Linux
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            with self._lock:
                self.received.extend(chunk)
            buf += chunk
        return buf

    def _frame(self, conn: socket.socket, rx: wire.Direction | None = None) -> wire.Frame:
        """The next frame; once sealed (rx), opened first."""
        (length,) = struct.unpack(">I", self._read(conn, 4))
        low, high = (16, 65536) if rx is None else (32, 65552)
        if not low <= length <= high:
            raise wire.WireError(f"frame length {length}")
        payload = self._read(conn, length)
        if rx is not None:
            payload = rx.open(payload)
        frame = wire.decode_payload(payload)
        with self._lock:
            self.frame_types.append(frame.type)
        return frame

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                hello = self._frame(conn)
                if hello.type != wire.HELLO or len(hello.fields.get(0x01, b"")) != 32:
                    raise wire.WireError("first frame is not HELLO")
                cn, sn = hello.fields[0x01], os.urandom(32)
                sp = wire.proof(self.psk, "daemon", cn, sn) if self.psk else os.urandom(32)
                conn.sendall(
                    wire.encode(wire.CHALLENGE, hello.request_id, [(0x01, sn), (0x03, sp)])
                )
                auth = self._frame(conn)
                if self.psk is None:
                    raise wire.WireError("a client that failed our proof still sent AUTH")
                if auth.type != wire.AUTH or auth.fields.get(0x04) != wire.proof(
                    self.psk, "client", cn, sn
                ):
                    conn.sendall(wire.encode(wire.ERROR, auth.request_id, [(0x21, b"auth")]))
                    return
                conn.sendall(wire.encode(wire.AUTH_OK, auth.request_id, []))
                with self._lock:
                    self.handshakes += 1
                rx = wire.Direction(self.psk, cn, sn, b"client->daemon")
                tx = wire.Direction(self.psk, cn, sn, b"daemon->client")
                while not self._stop.is_set():
                    frame = self._frame(conn, rx)
                    if frame.type == wire.CHANGE:
                        with self._lock:
                            self._change_frames += 1
                            drop = self._change_frames in self.drop_at
                        if drop:
                            return  # connection closed before the ACK
                        self._change(conn, tx, frame)
                    elif frame.type == wire.CHECK:
                        self._check(conn, tx, frame)
                    else:
                        raise wire.WireError(f"unexpected frame type {frame.type}")
        except (EOFError, ConnectionResetError):
            return  # the client went away (a harness exiting resets its connection)
        except InvalidTag:
            with self._lock:
                self.seal_failures += 1
                self.errors.append("InvalidTag: a frame from the filter did not open")
        except (OSError, wire.WireError, UnicodeDecodeError) as exc:
            if not self._stop.is_set():
                with self._lock:
                    self.errors.append(type(exc).__name__ + ": " + str(exc))

    def _change(self, conn: socket.socket, tx: wire.Direction, frame: wire.Frame) -> None:
        f = frame.fields
        for tag in (0x10, 0x12, 0x18, 0x19):
            if tag not in f:
                raise wire.WireError(f"CHANGE without tag 0x{tag:02x}")
        change = SeenChange(
            account=f[0x10].decode(),
            password_sha256=hashlib.sha256(f[0x12]).hexdigest(),
            event_id=f[0x19],
            seq=struct.unpack(">Q", f[0x1A])[0] if 0x1A in f else -1,
            changed_at=struct.unpack(">Q", f[0x18])[0],
            rid=struct.unpack(">I", f[0x16])[0] if 0x16 in f else None,
            fields=tuple(f),
        )
        status = self.ack(change)
        if status == 0:
            with self._lock:
                # idempotency, as the real daemon: a known event id is ACKed, not stored twice
                if all(c.event_id != change.event_id for c in self.changes):
                    self.changes.append(change)
        sealed = tx.seal(wire.encode(wire.ACK, frame.request_id, [(0x20, bytes([status]))]))
        with self._lock:
            self._acks_sent.append(sealed)
            n = len(self._acks_sent)
            if self.mangle_ack == "flip" and n == 1:
                sealed = sealed[:8] + bytes([sealed[8] ^ 0x01]) + sealed[9:]
                self.mangled += 1
            elif self.mangle_ack == "replay" and n == 2 and self.handshakes == 1:
                sealed = self._acks_sent[0]
                self.mangled += 1
        conn.sendall(sealed)

    def _check(self, conn: socket.socket, tx: wire.Direction, frame: wire.Frame) -> None:
        f = frame.fields
        with self._lock:
            self.checks.append(
                {
                    "account": f[0x10].decode(),
                    "password_sha256": hashlib.sha256(f[0x12]).hexdigest(),
                    "full_name": f.get(0x11, b"").decode(),
                    "set_operation": f.get(0x13),
                }
            )
        if self.verdict is None:
            self._stop.wait(60)  # silent: never answers
            return
        verdict = wire.encode(wire.VERDICT, frame.request_id, [(0x20, bytes([self.verdict]))])
        conn.sendall(tx.seal(verdict))
