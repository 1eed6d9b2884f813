from __future__ import annotations

import json
from pathlib import Path

import pytest

from adsync.hooks.settings import HookConfigError, load_hook_settings, read_block_yaml

DOC = """\
# adsync
ingest:
  unix_socket: "/run/adsync/f.sock"   # quoted, with a comment
  allowed_uids: [0]
queue:
  path: /var/lib/adsync/queue.db
precheck:
  backends: [soffid]
  on_undecided: reject
backends:
  soffid:
    type: soffid
    samba:
      initial_dump: forward
samba:
  initial_dump: forward
  check_deadline: 1500ms
"""


def test_block_yaml(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(DOC)
    settings = load_hook_settings(str(path))
    assert settings.unix_socket == "/run/adsync/f.sock"
    assert settings.on_undecided == "reject"
    assert settings.initial_dump == "forward"
    assert settings.check_deadline == 1.5
    assert settings.state_dir == "/var/lib/adsync"


def test_nested_keys_are_not_mistaken_for_sections() -> None:
    found = read_block_yaml("backends:\n  x:\n    samba:\n      initial_dump: forward\n")
    assert "samba" not in found


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("backends: {}\n")
    settings = load_hook_settings(str(path))
    assert settings.unix_socket == "/run/adsync/filter.sock"
    assert (settings.on_undecided, settings.initial_dump) == ("accept", "skip")
    assert settings.check_deadline == 3.0


def test_json(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    config = {"ingest": {"unix_socket": "s.sock"}, "samba": {"check_deadline": "2s"}}
    path.write_text(json.dumps(config))
    settings = load_hook_settings(str(path))
    assert settings.unix_socket == str(tmp_path.resolve() / "s.sock")
    assert settings.check_deadline == 2.0


def test_null_socket(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("ingest:\n  unix_socket: null\n")
    assert load_hook_settings(str(path)).unix_socket is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("precheck:\n  on_undecided: maybe\n", "precheck.on_undecided"),
        ("samba:\n  initial_dump: all\n", "samba.initial_dump"),
        ("samba:\n  check_deadline: 12s\n", "samba.check_deadline"),
        ("samba:\n  check_deadline: 9s\n", "samba.check_deadline"),
        ("samba:\n  check_deadline: 1.s\n", "samba.check_deadline"),
        ("samba:\n  check_deadline: soon\n", "samba.check_deadline"),
    ],
)
def test_bad_values(tmp_path: Path, doc: str, message: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(doc)
    with pytest.raises(HookConfigError, match=message):
        load_hook_settings(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HookConfigError, match="cannot read"):
        load_hook_settings(str(tmp_path / "nope.yaml"))


def test_flow_style_falls_back_to_the_full_loader(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "ingest: {unix_socket: /tmp/x.sock, tcp: null}\n"
        f"queue: {{path: {tmp_path}/q.db}}\n"
        f"keys: {{provider: file, path: {tmp_path}/m.key}}\n"
        "samba: {initial_dump: forward}\n"
        "backends:\n  hr: {type: webhook, url: 'https://127.0.0.1:9/', secret: 'env:HR'}\n"
    )
    settings = load_hook_settings(str(path))
    assert settings.unix_socket == "/tmp/x.sock"
    assert settings.initial_dump == "forward"
