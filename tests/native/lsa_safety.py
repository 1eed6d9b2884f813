"""Helpers for the LSASS-safety tests: the test-hook build of the DLL, a listener that
refuses slowly, spool records written from Python, and wine's record of Event Log entries.
"""

from __future__ import annotations

import copy
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lsa_wine import BUILD, NATIVE, WINE64, Harness, WinePrefix, spool_key, winpath

TEST_DLL = BUILD / "adsyncflt_test.dll"
# wine's ReportEventW writes each string to its "eventlog" debug channel: ERR for an
# error event, WARN for a warning (dlls/advapi32/eventlog.c). That is wine's Event Log.
EVENTLOG_DEBUG = "-all,err+eventlog,warn+eventlog"


def build_test_dll() -> Path:
    BUILD.mkdir(parents=True, exist_ok=True)
    log = BUILD / "make-dll-test.log"
    with log.open("wb") as out:
        rc = subprocess.run(
            ["make", "-C", str(NATIVE), "dll-test"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    assert rc == 0, log.read_text()[-4000:]
    return TEST_DLL


def wine_with(wine: WinePrefix, **env: str) -> WinePrefix:
    """The same prefix (and wineserver) with extra environment for the harness."""
    other = copy.copy(wine)
    other.env = {**wine.env, **env}
    return other


@dataclass
class HookHarness(Harness):
    """A harness run that loads a given DLL (the test-hook build by default)."""

    dll: Path = TEST_DLL

    async def start(self, *commands: str) -> None:
        import asyncio

        out = (self.workdir / f"{self.name}.out").open("ab")
        err = (self.workdir / f"{self.name}.err").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            WINE64,
            str(BUILD / "harness.exe"),
            winpath(self.dll),
            winpath(self.results),
            *commands,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=self.wine.env,
        )
        out.close()
        err.close()

    def stderr_text(self) -> str:
        p = self.workdir / f"{self.name}.err"
        return p.read_text(errors="replace") if p.exists() else ""

    def lines_of(self, kind: str) -> list[list[str]]:
        return [f for f in self.lines() if f and f[0] == kind]


class SlowRefusal:
    """A port where a connect neither succeeds nor fails quickly: a listener with a full
    accept queue. Linux then drops the SYN (net/ipv4/tcp_input.c, tcp_conn_request:
    "sk_acceptq_is_full ... goto drop") and the client retransmits it, so the connect
    stalls - what a Windows client sees on a refused loopback port for ~2 s while it
    retransmits its SYN after each RST. Nothing is ever accepted."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self._fill: list[socket.socket] = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self._fill.append(s)
            time.sleep(0.05)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", self.port))
            raise AssertionError("the accept queue is not full: the refusal would not be slow")
        except TimeoutError:
            pass
        finally:
            probe.close()

    def close(self) -> None:
        for s in self._fill:
            s.close()
        self.listener.close()


def seal_record(psk: bytes, account: str, password: str, changed_at_ms: int, seq: int) -> bytes:
    """One spool record as docs/windows.md defines it (written here from the spec)."""

    def tlv(tag: int, value: bytes) -> bytes:
        return struct.pack(">BH", tag, len(value)) + value

    pt = (
        tlv(0x10, account.encode())
        + tlv(0x12, password.encode())
        + tlv(0x16, struct.pack(">I", 1234))
        + tlv(0x18, struct.pack(">Q", changed_at_ms))
        + tlv(0x19, os.urandom(16))
        + tlv(0x1A, struct.pack(">Q", seq))
    )
    head = b"ASP1" + struct.pack(">I", len(pt))
    nonce = os.urandom(12)
    sealed = AESGCM(spool_key(psk)).encrypt(nonce, pt, head)
    return head + nonce + sealed  # ciphertext then the 16-byte tag


def reg_set_dword(wine: WinePrefix, name: str, value: int) -> None:
    rc = wine.run(
        [
            "reg",
            "add",
            r"HKLM\SOFTWARE\adsync\Filter",
            "/v",
            name,
            "/t",
            "REG_DWORD",
            "/d",
            str(value),
            "/f",
        ],
        "reg-add",
    )
    assert rc == 0
