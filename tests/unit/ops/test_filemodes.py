"""The private-file rule (adsync.filemodes) the daemon and doctor share: pure, from a stat."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adsync.filemodes import Kind, exposure
from adsync.plugin import check_target_url, safe_url

DAEMON, ROOT = 990, 0  # the service user adsync (uid = gid 990) and root
P = Path("/etc/adsync/x")


def check(kind: Kind, mode: int, owner: int, group: int) -> str | None:
    found = exposure(P, kind, stat.S_IFREG | mode, owner=owner, group=group, uid=DAEMON, gid=DAEMON)
    return None if found is None else found.chmod


@pytest.mark.parametrize("kind", [Kind.CONFIG, Kind.SECRET])
def test_the_documented_layout_root_adsync_0640_is_private(kind: Kind) -> None:
    assert check(kind, 0o640, ROOT, DAEMON) is None
    assert check(kind, 0o600, DAEMON, DAEMON) is None


@pytest.mark.parametrize("kind", [Kind.CONFIG, Kind.SECRET])
def test_group_read_is_flagged_when_it_is_not_how_the_daemon_reads_it(kind: Kind) -> None:
    assert check(kind, 0o640, DAEMON, DAEMON) == f"chmod 0600 {P}"  # it owns the file
    assert check(kind, 0o640, ROOT, ROOT) == f"chmod 0600 {P}"  # not its group: no reader there
    assert check(kind, 0o644, ROOT, DAEMON) == f"chmod 0640 {P}"  # others
    assert check(kind, 0o660, ROOT, DAEMON) == f"chmod 0640 {P}"  # group write


def test_keys_are_owner_only_and_only_the_config_is_a_warning() -> None:
    assert check(Kind.KEY, 0o640, ROOT, DAEMON) == f"chmod 0600 {P}"
    found = exposure(P, Kind.KEY, 0o604, owner=DAEMON, group=DAEMON, uid=DAEMON, gid=DAEMON)
    assert found is not None and found.refused and "readable by others" in found.problem
    config = exposure(P, Kind.CONFIG, 0o666, owner=DAEMON, group=DAEMON, uid=DAEMON, gid=DAEMON)
    assert config is not None and not config.refused
    assert config.problem == "mode 0666: writable by its group and others"


def test_urls_in_messages_lose_userinfo_query_and_fragment() -> None:
    assert safe_url("https://u:pw@h.example:8443/a/b?token=t#f") == "https://h.example:8443/a/b"
    assert safe_url("https://[::1]/x") == "https://[::1]/x"
    for bad in ("https://u:pw@h.example/", "ftp://u:pw@h/", "http://pw@h/"):
        with pytest.raises(ValueError) as info:
            check_target_url(bad)
        assert "pw" not in str(info.value) and "secret fields" in str(info.value)
