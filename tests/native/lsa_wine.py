"""Driving adsyncflt.dll under wine: a throwaway WINEPREFIX, registry settings through
`reg import`, and the harness .exe. wine's output always goes to files, never a pipe
(its background processes would inherit the pipe and keep it open)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NATIVE = Path(__file__).resolve().parents[2] / "native" / "lsa_filter"
BUILD = NATIVE / "build"
WINE_DIR = Path("/usr/lib/wine")
WINE64 = str(WINE_DIR / "wine64") if (WINE_DIR / "wine64").exists() else "wine64"
WINESERVER = str(WINE_DIR / "wineserver") if (WINE_DIR / "wineserver").exists() else "wineserver"
SPOOL_KEY_INFO = b"adsync/1 lsa-filter spool aes-256-gcm"


def winpath(p: Path) -> str:
    """wine maps the Linux root to drive Z:."""
    return "Z:" + str(p).replace("/", "\\")


def hex16(s: str) -> str:
    return s.encode("utf-16-le", "surrogatepass").hex()


def sha(s: str) -> str:
    """Passwords are compared as SHA-256 digests (hex of UTF-8), as the daemon reports them."""
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def free_port() -> int:
    """A TCP port nobody listens on (yet): for a daemon to take, or for the DLL to spool."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WinePrefix:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = root / "prefix"
        self.logs = root / "wine-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "WINEPREFIX": str(self.prefix),
            "WINEDEBUG": "-all",
            "WINEDLLOVERRIDES": "mscoree,mshtml=",
            "PATH": f"{WINE_DIR}:{os.environ.get('PATH', '')}",
        }
        self.env.pop("DISPLAY", None)
        self._n = 0
        self.last_stderr: Path | None = None  # of the last run(), for an error to quote

    def _outputs(self, name: str) -> tuple[Path, Path]:
        self._n += 1
        return self.logs / f"{self._n:03d}-{name}.out", self.logs / f"{self._n:03d}-{name}.err"

    def run(self, args: list[str], name: str, timeout: float = 120) -> int:
        out, err = self._outputs(name)
        self.last_stderr = err
        with out.open("wb") as o, err.open("wb") as e:
            return subprocess.run(
                [WINE64, *args],
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
                env=self.env,
                timeout=timeout,
                check=False,
            ).returncode

    def start(self) -> None:
        """Creates the prefix (wineboot) and keeps a wineserver alive for fast runs."""
        out, err = self._outputs("wineserver")
        with out.open("wb") as o, err.open("wb") as e:
            subprocess.Popen(
                [WINESERVER, "-p"], stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=self.env
            )
        rc = self.run(["wineboot", "-i"], "wineboot", timeout=300)
        if rc != 0:
            raise RuntimeError(f"wineboot failed with {rc}; see {self.logs}")

    def stop(self) -> None:
        out, err = self._outputs("wineserver-kill")
        with out.open("wb") as o, err.open("wb") as e:
            subprocess.run([WINESERVER, "-k"], stdout=o, stderr=e, env=self.env, check=False)
            subprocess.run(
                [WINESERVER, "-w"], stdout=o, stderr=e, env=self.env, check=False, timeout=60
            )
        # the prefix is ~700 MB and cheap to recreate: never leave it behind
        shutil.rmtree(self.prefix, ignore_errors=True)

    def set_filter_settings(self, values: dict[str, int | str]) -> None:
        """Replaces HKLM\\SOFTWARE\\adsync\\Filter with values (the DLL's real mechanism)."""
        lines = [
            "REGEDIT4",
            "",
            r"[-HKEY_LOCAL_MACHINE\SOFTWARE\adsync\Filter]",
            "",
            r"[HKEY_LOCAL_MACHINE\SOFTWARE\adsync\Filter]",
        ]
        for name, value in values.items():
            if isinstance(value, int):
                lines.append(f'"{name}"=dword:{value:08x}')
            else:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'"{name}"="{escaped}"')
        self._n += 1
        reg = self.logs / f"{self._n:03d}-settings.reg"
        reg.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
        rc = self.run(["reg", "import", winpath(reg)], "reg-import")
        if rc != 0:
            assert self.last_stderr is not None
            printed = self.last_stderr.read_text()[-2000:]
            raise RuntimeError(f"reg import failed with {rc}: {printed!r}")


@dataclass
class Harness:
    """One run of harness.exe; results are read from its file."""

    wine: WinePrefix
    workdir: Path
    name: str = "harness"

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.results = self.workdir / f"{self.name}.results"
        self.stop_file = self.workdir / f"{self.name}.stop"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *commands: str) -> None:
        dll = winpath(BUILD / "adsyncflt.dll")
        out = (self.workdir / f"{self.name}.out").open("ab")
        err = (self.workdir / f"{self.name}.err").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            WINE64,
            str(BUILD / "harness.exe"),
            dll,
            winpath(self.results),
            *commands,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=self.wine.env,
        )
        out.close()
        err.close()

    async def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def run(self, *commands: str, timeout: float = 120) -> int:
        await self.start(*commands)
        return await self.wait(timeout)

    def release(self) -> None:
        """Lets a harness blocked in `wait STOPFILE` exit."""
        self.stop_file.write_text("stop")

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def lines(self) -> list[list[str]]:
        if not self.results.exists():
            return []
        return [line.split() for line in self.results.read_text().splitlines()]

    def notify_ns(self) -> list[int]:
        return [int(f[2]) for f in self.lines() if f[0] == "notify" and len(f) == 4]

    def filter_results(self) -> list[tuple[int, int]]:
        return [(int(f[2]), int(f[3])) for f in self.lines() if f[0] == "filter" and len(f) == 4]


def write_changes(path: Path, changes: list[tuple[int, str, str]]) -> Path:
    """rid, account, password per line, as hex of UTF-16LE (lone surrogates allowed)."""
    path.write_text("".join(f"{rid}\t{hex16(a)}\t{hex16(p)}\n" for rid, a, p in changes))
    return path


def write_checks(path: Path, checks: list[tuple[bool, str, str, str]]) -> Path:
    path.write_text(
        "".join(f"{int(s)}\t{hex16(a)}\t{hex16(f)}\t{hex16(p)}\n" for s, a, f, p in checks)
    )
    return path


def spool_key(psk: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, None, SPOOL_KEY_INFO).derive(psk)


def read_spool(path: Path, psk: bytes) -> list[dict[int, bytes]]:
    """Opens every record of the spool file with Python's AES-GCM (the documented format):
    one dict per record, TLV tag -> value."""
    data = path.read_bytes() if path.exists() else b""
    aead = AESGCM(spool_key(psk))
    records = []
    off = 0
    while off + 8 <= len(data):
        assert data[off : off + 4] == b"ASP1"
        n = int.from_bytes(data[off + 4 : off + 8], "big")
        end = off + 20 + n + 16
        if end > len(data):
            break  # torn tail
        nonce = data[off + 8 : off + 20]
        pt = aead.decrypt(nonce, data[off + 20 : end], data[off : off + 8])
        fields: dict[int, bytes] = {}
        i = 0
        while i < len(pt):
            tag, flen = pt[i], int.from_bytes(pt[i + 1 : i + 3], "big")
            fields[tag] = pt[i + 3 : i + 3 + flen]
            i += 3 + flen
        records.append(fields)
        off = end
    return records


async def wait_until(pred, within: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


async def spool_then_kill(setup, tmp_path: Path, changes, hold: int = 60) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """Every change into the spool with nobody listening, then the harness (told to stay
    `hold` seconds) SIGKILLed: the process dies with a non-empty spool. Returns the port,
    for a daemon to appear on, and the spool's bytes."""
    port = free_port()
    setup.configure(port)
    first = Harness(setup.wine, tmp_path, name="first")
    await first.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", changes)),
        "wait",
        winpath(first.stop_file),
        str(hold),
    )
    assert await wait_until(
        lambda: len(read_spool(setup.spool_file, setup.psk)) == len(changes), 30
    )
    first.kill()
    await first.wait()
    return port, setup.spool_file.read_bytes()


def tools_present() -> list[str]:
    return [t for t in ("x86_64-w64-mingw32-gcc", "make") if shutil.which(t) is None] + (
        [] if Path(WINE64).exists() or shutil.which("wine64") else ["wine64"]
    )
