"""What a reload changes: the pure comparison of two configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adsync.config import config_from_data
from adsync.reload import pid_file_for, plan_reload, remove_pid_file, write_pid_file


def cfg(**over: Any) -> Any:
    data: dict[str, Any] = {
        "ingest": {"unix_socket": "/run/x.sock", "tcp": None},
        "queue": {"path": "/var/lib/adsync/q.db"},
        "backends": {
            "a": {"type": "webhook", "url": "http://127.0.0.1:1/h", "secret": "env:X"},
            "b": {"type": "webhook", "url": "http://127.0.0.1:2/h", "secret": "env:X"},
        },
    }
    for k, v in over.items():
        data[k] = v
    return config_from_data(data)


def test_backends_added_removed_changed() -> None:
    old = cfg()
    backends = {
        "a": {"type": "webhook", "url": "http://127.0.0.1:1/h", "secret": "env:X"},
        "b": {
            "type": "webhook",
            "url": "http://127.0.0.1:2/h",
            "secret": "env:X",
            "concurrency": 9,
        },
        "c": {"type": "webhook", "url": "http://127.0.0.1:3/h", "secret": "env:X"},
    }
    plan = plan_reload(old, cfg(backends=backends))
    assert (plan.added, plan.removed, plan.changed) == (("c",), (), ("b",))
    assert plan.restart_needed == ()
    assert plan.config.backends["b"].concurrency == 9
    gone = plan_reload(old, cfg(backends={"a": backends["a"]}))
    assert (gone.added, gone.removed, gone.changed) == ((), ("b",), ())


def test_restart_only_keys_are_reported_and_keep_running_values() -> None:
    old = cfg()
    new = cfg(
        ingest={"unix_socket": "/run/other.sock", "tcp": None, "max_connections": 5},
        queue={"path": "/elsewhere.db"},
        metrics={"listen": "127.0.0.1:9999"},
        logging={"level": "debug"},
        precheck={"timeout": "1s"},
    )
    plan = plan_reload(old, new)
    assert plan.restart_needed == (
        "ingest.unix_socket",
        "ingest.max_connections",
        "queue.path",
        "metrics.listen",
    )
    assert plan.config.ingest == old.ingest and plan.config.queue == old.queue
    assert plan.config.metrics == old.metrics
    assert plan.config.logging.level == "debug"  # live
    assert plan.config.precheck.timeout == 1.0  # live
    assert not plan.backends_touched


def test_same_file_changes_nothing() -> None:
    plan = plan_reload(cfg(), cfg())
    assert not plan.backends_touched and plan.restart_needed == ()


def test_a_backend_that_did_not_start_is_started_again_when_kept() -> None:
    plan = plan_reload(cfg(), cfg(), not_started={"b"})
    assert (plan.added, plan.removed, plan.changed) == ((), (), ("b",))
    dropped = cfg(backends={"a": cfg().backends["a"].model_dump(mode="json")})
    gone = plan_reload(cfg(), dropped, not_started={"b"})
    assert (gone.added, gone.removed, gone.changed) == ((), ("b",), ())


def test_pid_file_names_this_process_and_is_removed_only_by_it(tmp_path: Path) -> None:
    pid_file = pid_file_for(tmp_path / "queue.db")
    assert pid_file.name == "queue.db.pid"
    write_pid_file(pid_file)
    assert pid_file.read_text().strip() == str(os.getpid())
    pid_file.write_text("1\n")  # another daemon's
    remove_pid_file(pid_file)
    assert pid_file.exists()
    write_pid_file(pid_file)
    remove_pid_file(pid_file)
    assert not pid_file.exists()
