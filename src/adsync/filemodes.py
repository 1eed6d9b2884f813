"""Which files must stay private, decided from a stat result (pure: no I/O here).

One rule for the daemon (at start: warn for the config, refuse for a secret) and for
``adsync doctor`` (a ✗). The daemon's user may read a file through its group only when
that is how it reads it at all: the documented layout ``root:adsync 0640`` for the config
and backend secrets. Otherwise group and others get nothing: a file the daemon owns is
``0600``. The master key and the PSK are always owner-only (their readers refuse more).
"""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass
from pathlib import Path


class Kind(enum.Enum):
    """What a file is to adsync; decides the modes it may have and what a wider one means."""

    CONFIG = "config file"  # no secret in it (secrets are references): wider is a warning
    SECRET = "secret file"  # noqa: S105 - a backend's file: secret
    KEY = "key file"  # the master key, the PSK: owner only
    STATE_DIR = "queue directory"
    STATE_FILE = "queue file"


_GROUP_READ_OK = {Kind.CONFIG, Kind.SECRET, Kind.STATE_DIR}
_DIRECTORY = {Kind.STATE_DIR}


@dataclass(frozen=True, slots=True)
class Exposure:
    """A file more open than it should be: what is wrong and the ``chmod`` that fixes it."""

    path: Path
    kind: Kind
    mode: int
    allowed: int  # the mode to set

    @property
    def refused(self) -> bool:
        """The daemon does not start with it (a warning only for the config)."""
        return self.kind is not Kind.CONFIG

    @property
    def chmod(self) -> str:
        return f"chmod {self.allowed:04o} {self.path}"

    @property
    def problem(self) -> str:
        who = []
        if self.mode & 0o070 & ~self.allowed:
            who.append("its group")
        if self.mode & 0o007:
            who.append("others")
        access = "writable" if self.mode & 0o022 else "readable"
        return f"mode {self.mode:04o}: {access} by {' and '.join(who)}"

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path} has {self.problem}; run: {self.chmod}"


def allowed_mode(kind: Kind, *, owner: int, group: int, uid: int, gid: int) -> int:
    """The widest mode ``kind`` may have, for a file owned ``owner:group`` read by ``uid:gid``.

    Group read only when the daemon's user reads the file through its group (it is not
    the owner, the file's group is its own): ``0640`` (``0750`` for a directory).
    """
    through_group = owner != uid and group == gid and kind in _GROUP_READ_OK
    if kind in _DIRECTORY:
        return 0o750 if through_group else 0o700
    return 0o640 if through_group else 0o600


def exposure(
    path: Path, kind: Kind, st_mode: int, *, owner: int, group: int, uid: int, gid: int
) -> Exposure | None:
    """None when ``path`` (stat'ed as ``st_mode``, ``owner``, ``group``) is private enough
    for a daemon running as ``uid:gid``; else what is wrong with it."""
    mode = stat.S_IMODE(st_mode)
    allowed = allowed_mode(kind, owner=owner, group=group, uid=uid, gid=gid)
    if mode & 0o077 & ~allowed:
        return Exposure(path, kind, mode, allowed)
    return None


__all__ = ["Exposure", "Kind", "allowed_mode", "exposure"]
