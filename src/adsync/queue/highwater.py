"""``<db>.acked``: how many changes the queue has acknowledged, kept outside the WAL.

An ACK means "committed", and a commit lives in ``<db>-wal`` until a checkpoint
copies it into the database. Delete the WAL after a crash and those changes are
gone without a trace: SQLite opens what is left as a consistent, older
database. The database counts the changes it ever stored (``counters.appended``,
bumped in the append's own transaction); this file holds that count as last
seen after a commit. At start a database that counts fewer changes than the file
is behind what it acknowledged: the daemon refuses to run (``QueueBehind``)
until the operator accepts the loss (``adsync queue accept-loss``).

Cost, off the ACK path: after each commit that stored changes, the mark's own
thread writes the new count into the file at once (the page cache: that survives
a killed process) and fdatasyncs it at most once per ``SYNC_INTERVAL`` and at
close: an fdatasync per commit would be a second device flush per ACK when
changes come one at a time. Detection works when the mark was written after
the last checkpoint and before the loss: a lost WAL after a killed process is
missed only when it held nothing but the very last commit, killed before its
count was written (microseconds); after a power cut, when it held only changes
stored in the last ``SYNC_INTERVAL``. The file never runs ahead of the database:
a count is written only after its commit returned (fsynced), so a healthy queue
is never refused.

Format: two 16-byte slots (magic, count, CRC-32), written alternately; a torn
write spoils one slot and the other still holds an older, smaller count.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from pathlib import Path

import structlog

from adsync.queue.errors import QueueError

log = structlog.get_logger("adsync.queue")

SUFFIX = ".acked"
_MAGIC = b"ADAK"
_SLOT = struct.Struct("<4sQI")  # magic, count, crc32(magic + count)


class QueueBehind(QueueError):
    """The database holds fewer changes than it acknowledged (its WAL was lost, or it was
    replaced or restored from a backup)."""


def mark_path(db: Path) -> Path:
    return db.with_name(db.name + SUFFIX)


def _slot(count: int) -> bytes:
    head = _MAGIC + struct.pack("<Q", count)
    return _SLOT.pack(_MAGIC, count, zlib.crc32(head))


def _parse(data: bytes) -> int | None:
    counts = []
    for offset in (0, _SLOT.size):
        chunk = data[offset : offset + _SLOT.size]
        if len(chunk) != _SLOT.size:
            continue
        magic, count, crc = _SLOT.unpack(chunk)
        if magic == _MAGIC and zlib.crc32(chunk[:12]) == crc:
            counts.append(count)
    return max(counts, default=None)


def read_mark(db: Path) -> int | None:
    """The count in ``<db>.acked``; None when there is none (first start, or unreadable)."""
    path = mark_path(db)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    count = _parse(data)
    if count is None and data:
        log.warning("queue_mark_unreadable", file=path.name, note="rewritten from the database")
    return count


def write_mark(db: Path, count: int) -> None:
    """Write ``count`` into both slots, durably (file and directory entry): at open and close."""
    path = mark_path(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, _slot(count) * 2)
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    if os.name == "nt":  # pragma: no cover - NTFS makes the entry durable with the file
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check(db: Path, stored: int) -> None:
    """Raise ``QueueBehind`` when ``<db>.acked`` counts more changes than the database."""
    acked = read_mark(db)
    if acked is None or acked <= stored:
        return
    missing = acked - stored
    log.error("queue_behind_acknowledged", acknowledged=acked, stored=stored, missing=missing)
    raise QueueBehind(
        f"{db.name} holds at least {missing} fewer changes than it acknowledged "
        f"({stored} stored, {acked} acknowledged per {mark_path(db).name}): "
        f"was {db.name}-wal deleted, or the database replaced or restored from a backup? "
        "The daemon will not start on it; see docs/operations.md, 'The queue is behind "
        "what it acknowledged' (accept the loss with: adsync queue accept-loss)"
    )


class MarkWriter:
    """Keeps ``<db>.acked`` at the newest committed count, from its own thread.

    Each new count is written at once (a write to the page cache: it survives a
    killed process); the file is fdatasync'ed at most once per ``SYNC_INTERVAL``
    and at close (what survives a power cut lags by at most that).
    """

    SYNC_INTERVAL = 1.0

    def __init__(self, db: Path, count: int) -> None:
        write_mark(db, count)
        self._path = mark_path(db)
        self._fd = os.open(self._path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        self._cond = threading.Condition()
        self._target = self._written = count
        self._synced = True
        self._last_sync = time.monotonic()
        self._next_slot = 0
        self._closed = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="adsync-acked", daemon=True)
        self._thread.start()

    def advance(self, count: int) -> None:
        """The database now holds ``count`` changes, committed (called after each commit)."""
        with self._cond:
            if count > self._target:
                self._target = count
                self._cond.notify()

    def close(self) -> None:
        """Write and sync the last count, then stop (blocks for at most one write)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def _due(self) -> float | None:
        """Seconds until the written count must be synced; None when it is."""
        if self._synced:
            return None
        return self._last_sync + self.SYNC_INTERVAL - time.monotonic()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._target == self._written:
                    due = self._due()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                count, closing = self._target, self._closed
            try:
                if count != self._written:
                    self._write(count)
                due = self._due()
                if due is not None and (closing or due <= 0):
                    getattr(os, "fdatasync", os.fsync)(self._fd)
                    self._synced, self._last_sync = True, time.monotonic()
            except OSError as exc:
                if not self._failing:  # once per outage, not once per commit
                    log.warning("queue_mark_write_failed", file=self._path.name, error=exc.strerror)
                self._failing = True
                if closing:
                    return
                with self._cond:  # try again after a pause, with the newest count
                    self._cond.wait(1.0)
                continue
            self._failing = False
            if closing:
                return

    def _write(self, count: int) -> None:
        offset = self._next_slot * _SLOT.size
        if hasattr(os, "pwrite"):
            os.pwrite(self._fd, _slot(count), offset)
        else:  # pragma: no cover - Windows
            os.lseek(self._fd, offset, os.SEEK_SET)
            os.write(self._fd, _slot(count))
        self._next_slot ^= 1
        self._written, self._synced = count, False


def accept(db: Path, stored: int) -> int | None:
    """Make ``<db>.acked`` say ``stored`` (the loss is accepted); returns the old count."""
    before = read_mark(db)
    write_mark(db, stored)
    return before
