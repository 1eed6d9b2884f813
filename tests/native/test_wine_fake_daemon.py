"""The DLL under wine against a protocol-faithful fake daemon: the behaviours the real
daemon cannot be made to show (silence, not knowing the key, busy on demand)."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path

from lsa_fakedaemon import FakeDaemon, SeenChange
from lsa_wine import Harness, read_spool, wait_until, write_changes, write_checks

from adsync.testing.leaks import REGISTRY


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


SPECIAL = [
    "Pässwörd€1",
    "x" * 255 + "Z",  # 256 UTF-16 units
    "astral 😀𝄞🂡 end",
    "ab\u00e9\u4e2d\U0010fffd",
]


async def test_changes_arrive_byte_exact(filter_setup, tmp_path: Path) -> None:
    passwords = [REGISTRY.password(p) for p in SPECIAL] + [
        REGISTRY.password(f"Simple-{i}-pw") for i in range(20)
    ]
    changes = [(1100 + i, f"user{i % 5}", pw) for i, pw in enumerate(passwords)]
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        start_ms = int(time.time() * 1000)
        await h.start("init", "notify", str_win(write_changes(tmp_path / "c.txt", changes)),
                      "wait", str_win(h.stop_file), "60")
        seen = daemon.wait_changes(len(changes), within=30)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert [c.password_sha256 for c in seen] == [sha(p) for p in passwords]
    assert [c.account for c in seen] == [a for _, a, _ in changes]
    assert [c.rid for c in seen] == [r for r, _, _ in changes]
    assert len({c.event_id for c in seen}) == len(seen)
    assert all(len(c.event_id) == 16 for c in seen)
    seqs = [c.seq for c in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(start_ms - 5000 <= c.changed_at <= start_ms + 60000 for c in seen)
    assert h.lines()[1] == ["init", "1"]
    assert len(h.notify_ns()) == len(changes)  # the harness measured every call


def str_win(p: Path) -> str:
    from lsa_wine import winpath

    return winpath(p)
