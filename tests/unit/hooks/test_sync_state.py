"""samba-sync's state: the baseline, the skipped count, the sent keys, and the older form."""

from __future__ import annotations

import json
import os
from pathlib import Path

from adsync.hooks import sync_state

GUID = "abf599a2-49c1-4d58-afa1-7cf29a54d1a7"


def test_baseline_resets_the_count_and_survives_skips(tmp_path: Path) -> None:
    state = str(tmp_path)
    sync_state.set_baseline(state, now_ms=1234)
    assert [sync_state.count_skipped(state) for _ in range(3)] == [1, 2, 3]
    loaded = sync_state.load_state(state)
    assert (loaded.baseline_ms, loaded.initial_skipped) == (1234, 3)
    sync_state.set_baseline(state, now_ms=5678)
    loaded = sync_state.load_state(state)
    assert (loaded.baseline_ms, loaded.initial_skipped) == (5678, 0)
    assert os.stat(sync_state.state_path(state)).st_mode & 0o777 == 0o600


def test_acked_per_account(tmp_path: Path) -> None:
    state = str(tmp_path)
    assert sync_state.read_acked(state, GUID) is None
    sync_state.write_acked(state, GUID, 4)
    sync_state.write_acked(state, GUID, 5)
    assert sync_state.read_acked(state, GUID) == 5
    (tmp_path / sync_state.ACKED_DIR / GUID).write_text("garbage")
    assert sync_state.read_acked(state, GUID) is None  # damaged: send again, never skip


def test_an_older_json_state_is_migrated(tmp_path: Path) -> None:
    state = str(tmp_path)
    old = {"baseline_ms": 99, "initial_skipped": 7, "acked": {GUID: 4}}
    Path(sync_state.state_path(state)).write_text(json.dumps(old))
    loaded = sync_state.load_state(state)
    assert (loaded.baseline_ms, loaded.initial_skipped, loaded.acked) == (99, 7, {GUID: 4})
    sync_state.migrate(state)
    assert sync_state.read_acked(state, GUID) == 4
    text = Path(sync_state.state_path(state)).read_text()
    assert text == "baseline_ms 99\ninitial_skipped 7\n"
