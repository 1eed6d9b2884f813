"""The power-cut model itself, on a small program whose I/O is recorded by the real shim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .syncfs import OP_FSYNC, build_shim, cuts, read_log, shim_env

PROGRAM = r"""
import os, sys
d = sys.argv[1]
def sync(path):
    fd = os.open(path, os.O_RDONLY); os.fsync(fd); os.close(fd)
fd = os.open(d + "/a", os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"one"); os.fsync(fd)             # a: "one" durable
os.write(fd, b"two")                            # never synced
os.close(fd)
fd = os.open(d + "/k.new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"KEY"); os.fsync(fd); os.close(fd)
os.replace(d + "/k.new", d + "/k")              # durable only with the directory sync
sync(d)
"""


def run_recorded(tmp_path: Path) -> tuple[Path, Path]:
    shim = build_shim(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "io.log"
    env = {**os.environ, **shim_env(shim, data, log)}
    subprocess.run([sys.executable, "-c", PROGRAM, str(data)], env=env, check=True)
    return data, log


def test_unsynced_writes_are_lost_and_synced_ones_kept(tmp_path: Path) -> None:
    data, log = run_recorded(tmp_path)
    records = read_log(log)
    assert (data / "a").read_bytes() == b"onetwo", "the live file has both writes"
    syncs = [i for i, r in enumerate(records) if r.op == OP_FSYNC]
    assert len(syncs) == 3
    first, key, directory = list(cuts(records, data, syncs, mode="posix"))
    assert first.files == key.files == {}, "no name is durable before the directory sync"
    assert directory.files == {"a": b"one", "k": b"KEY"}


def test_ext4_mode_commits_names_with_any_fsync(tmp_path: Path) -> None:
    data, log = run_recorded(tmp_path)
    records = read_log(log)
    syncs = [i for i, r in enumerate(records) if r.op == OP_FSYNC]
    after_key = next(iter(cuts(records, data, [syncs[1]], mode="ext4")))
    assert after_key.files == {"a": b"one", "k.new": b"KEY"}, "renamed only after this sync"
    first = next(iter(cuts(records, data, [syncs[0]], mode="ext4")))
    assert first.files == {"a": b"one"}
