"""Bugs the power-cut replay found, each kept at the cut point that found it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .syncfs import OP_FSYNC, build_shim, cuts, read_log, shim_env

CREATE_KEY = r"""
import sys
from adsync.queue.keys import FileKeyProvider
provider = FileKeyProvider(sys.argv[1] + "/master.key")
provider.master_key(create=True)
provider.stage(bytes(32))
"""


def test_a_new_key_file_survives_a_power_cut_once_it_is_returned(tmp_path: Path) -> None:
    """Found at the first sync after the master key's creation (posix model): the key's
    content was synced but not its name, so a queue whose keys it wrapped could be left
    with no master key at all. The same held for a staged ``master.key.new``."""
    shim = build_shim(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "io.log"
    env = {**os.environ, **shim_env(shim, data, log)}
    subprocess.run([sys.executable, "-c", CREATE_KEY, str(data)], env=env, check=True)
    records = read_log(log)
    last_sync = max(i for i, r in enumerate(records) if r.op == OP_FSYNC)
    (disk,) = cuts(records, data, [last_sync], mode="posix")
    assert len(disk.files.get("master.key", b"")) == 32
    assert disk.files.get("master.key.new") == bytes(32)
