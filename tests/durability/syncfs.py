"""Simulated power loss: build the LD_PRELOAD recorder, read its log, rebuild the disk as a
power cut at any sync boundary would leave it.

The model (pure, no I/O beyond reading the log): a file's content is durable as of its last
``fsync``/``fdatasync``; whatever was written after it is lost whole (the harshest case a
disk that honours flushes allows). Namespace operations (create, rename, unlink) become
durable in one of two ways, chosen per replay:

* ``ext4``: any fsync commits every earlier namespace operation too, as ext4's journal
  does (data=ordered: an fsync commits the running transaction, which holds them all);
* ``posix``: only an fsync of the directory makes them durable (what POSIX promises).

A cut point is "right after sync record i": between two syncs the durable state does not
change, so these are all the states a power cut can leave.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIM_SOURCE = HERE / "syncfs_shim.c"

OP_OPEN, OP_WRITE, OP_TRUNCATE, OP_FSYNC, OP_RENAME, OP_UNLINK = 1, 2, 3, 4, 6, 7
_REC = struct.Struct("<IB3xIIQQQHH4x")
O_TRUNC = os.O_TRUNC


def build_shim(out_dir: Path) -> Path:
    """Compile the recorder (gcc is a test need: scripts/install-test-deps.sh)."""
    out = out_dir / "syncfs_shim.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def shim_env(shim: Path, watched: Path, log: Path) -> dict[str, str]:
    """The environment that makes a process record its I/O under ``watched`` into ``log``."""
    return {"LD_PRELOAD": str(shim), "SYNCFS_DIR": str(watched.resolve()), "SYNCFS_LOG": str(log)}


@dataclass(frozen=True, slots=True)
class Record:
    op: int
    pid: int
    flags: int
    t_ns: int
    off: int
    length: int
    path: str
    path2: str
    data: bytes


def read_log(log: Path) -> list[Record]:
    blob = log.read_bytes()
    records: list[Record] = []
    pos = 0
    while pos < len(blob):
        size, op, pid, flags, t_ns, off, length, p1len, p2len = _REC.unpack_from(blob, pos)
        body = pos + _REC.size
        p1 = blob[body : body + p1len].decode()
        p2 = blob[body + p1len : body + p1len + p2len].decode()
        data = blob[body + p1len + p2len : pos + size]
        records.append(Record(op, pid, flags, t_ns, off, length, p1, p2, data))
        pos += size
    return records


@dataclass
class _File:
    content: bytearray = field(default_factory=bytearray)
    durable: bytes = b""


@dataclass
class Cut:
    """The disk after a power cut right after record ``index`` (a sync) took effect."""

    index: int
    t_ns: int
    files: dict[str, bytes]  # name relative to the watched directory → durable content

    def materialize(self, into: Path) -> None:
        into.mkdir(parents=True, exist_ok=True)
        for name, content in self.files.items():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o600)


def sync_points(records: Iterable[Record]) -> list[int]:
    return [i for i, r in enumerate(records) if r.op == OP_FSYNC]


def cuts(
    records: list[Record], watched: Path, at: Iterable[int], *, mode: str = "ext4"
) -> Iterator[Cut]:
    """The disk at each requested record index (ascending), in one pass over the log."""
    if mode not in ("ext4", "posix"):
        raise ValueError("mode is ext4 or posix")
    root = str(watched.resolve())
    wanted = sorted(set(at))
    names: dict[str, _File] = {}  # the namespace as processes see it
    durable_names: dict[str, _File] = {}  # the namespace on disk
    next_wanted = 0

    def rel(path: str) -> str:
        return os.path.relpath(path, root)

    for index, rec in enumerate(records):
        if next_wanted >= len(wanted):
            return
        name = rel(rec.path) if rec.path else ""
        if rec.op == OP_OPEN:
            f = names.get(name)
            if f is None:
                names[name] = f = _File()
            if rec.flags & O_TRUNC:
                f.content = bytearray()
        elif rec.op == OP_WRITE:
            f = names.setdefault(name, _File())
            end = rec.off + len(rec.data)
            if len(f.content) < end:
                f.content.extend(b"\0" * (end - len(f.content)))
            f.content[rec.off : end] = rec.data
        elif rec.op == OP_TRUNCATE:
            f = names.setdefault(name, _File())
            del f.content[rec.off :]
            if len(f.content) < rec.off:
                f.content.extend(b"\0" * (rec.off - len(f.content)))
        elif rec.op == OP_RENAME:
            moved = names.pop(name, None)
            if moved is not None:
                names[rel(rec.path2)] = moved
        elif rec.op == OP_UNLINK:
            names.pop(name, None)
        elif rec.op == OP_FSYNC:
            if rec.path == root:  # a directory sync: the namespace is on disk
                durable_names = dict(names)
            else:
                f = names.get(name)
                if f is not None:
                    f.durable = bytes(f.content)
                if mode == "ext4":
                    durable_names = dict(names)
        while next_wanted < len(wanted) and wanted[next_wanted] == index:
            files = {n: f.durable for n, f in durable_names.items()}
            yield Cut(index, rec.t_ns, files)
            next_wanted += 1


def copy_fresh(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
