"""The pre-shared key file: created 0600 once, refused when unsafe, content never shown."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adsync.ingest.psk import PskError, load_or_create_psk


def test_created_once_with_mode_0600_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "filter.key"
    old = os.umask(0)
    try:
        key = load_or_create_psk(path)
    finally:
        os.umask(old)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key
    assert load_or_create_psk(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["filter.key"]


def test_refuses_wrong_length_naming_the_path_not_the_content(tmp_path: Path) -> None:
    path = tmp_path / "filter.key"
    content = b"SECRETSECRET-content-31-bytes!!"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(PskError) as info:
        load_or_create_psk(path)
    message = str(info.value)
    assert str(path) in message
    assert "32 bytes" in message
    leaked = content.decode() in message or content.hex() in message
    assert not leaked
    assert path.read_bytes() == content  # left alone


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_refuses_file_readable_by_group_or_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "filter.key"
    path.write_bytes(os.urandom(32))
    path.chmod(mode)
    with pytest.raises(PskError, match=f"{path}.*accessible by group or others"):
        load_or_create_psk(path)


def test_refuses_symlink_and_directory(tmp_path: Path) -> None:
    target = tmp_path / "real.key"
    target.write_bytes(os.urandom(32))
    target.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(PskError, match="cannot open key file"):
        load_or_create_psk(link)
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(PskError, match="not a regular file"):
        load_or_create_psk(tmp_path / "dir.key")


def test_refuses_file_owned_by_another_user(tmp_path: Path) -> None:
    path = tmp_path / "filter.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    os.chown(path, 65534, -1)  # the suite runs as root
    with pytest.raises(PskError, match=f"{path} is owned by uid 65534"):
        load_or_create_psk(path)
