"""The hooks' frame writer against the daemon's codec, and the check hook's back-off."""

from __future__ import annotations

import hashlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adsync.hooks import backoff, samba_check
from adsync.hooks.frames import (
    DaemonRefused,
    DaemonTimeout,
    change_frame,
    check_frame,
    exchange,
    parse_reply,
)
from adsync.hooks.samba_check import CheckOptions, run_check
from adsync.ingest.codec import (
    AckReply,
    ChangeMsg,
    Check,
    ErrorReply,
    VerdictReply,
    decode,
    encode,
)
from adsync.ingest.wire import AckCode, VerdictCode

PASSWORD = "Pässwörd€1-frames"
GUID = "abf599a2-49c1-4d58-afa1-7cf29a54d1a7"


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def test_check_frame_decodes_with_the_daemons_codec() -> None:
    frame = check_frame(
        account="alice", password=PASSWORD.encode(), full_name="Alice A",
        domain="ADSYNC", source_host="dc1",
    )  # fmt: skip
    _, message = decode(bytes(frame[4:]))
    assert isinstance(message, Check)
    assert (message.account, message.full_name, message.domain) == ("alice", "Alice A", "ADSYNC")
    assert (message.set_operation, message.source_host) == (False, "dc1")
    assert sha(message.password.reveal()) == sha(PASSWORD)


def test_change_frame_decodes_with_the_daemons_codec() -> None:
    event = bytes(range(16))
    frame = change_frame(
        account="alice", password=PASSWORD.encode(), changed_at_ms=1_700_000_000_000,
        event_id=event, domain="ADSYNC", source_host="dc1", rid=1102,
        object_guid_le=uuid.UUID(GUID).bytes_le,
    )  # fmt: skip
    _, message = decode(bytes(frame[4:]))
    assert isinstance(message, ChangeMsg)
    assert (message.account, message.domain, message.rid) == ("alice", "ADSYNC", 1102)
    assert message.object_guid == uuid.UUID(GUID).bytes_le and message.event_id == event
    assert message.changed_at_ms == 1_700_000_000_000


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (VerdictReply(VerdictCode.REJECT, "banned"), (1, "banned")),
        (AckReply(AckCode.BUSY, "queue full"), (2, "queue full")),
    ],
)
def test_replies_from_the_codec(reply: VerdictReply | AckReply, expected: tuple[int, str]) -> None:
    _, status, reason = parse_reply(encode(reply, 1)[4:])
    assert (status, reason) == expected


def test_error_reply_is_a_refusal() -> None:
    with pytest.raises(DaemonRefused, match="bad magic"):
        parse_reply(encode(ErrorReply("bad magic"), 1)[4:])


class Daemon:
    """A Unix socket that accepts and answers ``reply`` (None: never answers, like SIGSTOP)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reply: bytes | None = None
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.recv(65536)
            if self.reply is None:
                self.held.append(conn)
            else:
                conn.sendall(self.reply)
                conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "d.sock")
    yield d
    d.close()


def write_config(tmp_path: Path, daemon: Daemon) -> CheckOptions:
    config = tmp_path / "adsync.yaml"
    config.write_text(
        f"ingest:\n  unix_socket: {daemon.path}\nqueue:\n  path: {tmp_path}/state/q.db\n"
        "precheck:\n  on_undecided: accept\nsamba:\n  check_deadline: 300ms\n"
    )
    (tmp_path / "state").mkdir()
    return CheckOptions(str(config), on_undecided="reject", domain="ADSYNC", backoff=30.0)


ENV = {"SAMBA_CPS_ACCOUNT_NAME": "alice"}


def test_exchange_times_out_on_a_silent_daemon(daemon: Daemon) -> None:
    frame = check_frame(account="a", password=b"x", full_name="", domain="", source_host="")
    with pytest.raises(DaemonTimeout):
        exchange(str(daemon.path), frame, 0.2)
    assert frame == bytearray(len(frame))  # the password's bytes are zeroed


def test_a_hung_daemon_costs_one_deadline_per_window(tmp_path: Path, daemon: Daemon) -> None:
    options = write_config(tmp_path, daemon)
    now = 1_000_000.0
    code, message = run_check(options, ENV, PASSWORD.encode(), now=now)
    assert code == 0 and "did not answer in time" in message  # config's on_undecided: accept
    assert daemon.connections == 1
    code, message = run_check(options, ENV, PASSWORD.encode(), now=now + 5)
    assert code == 0 and "timed out recently" in message
    assert daemon.connections == 1  # not asked within the window
    # After the window the daemon is asked again (and answers: the window is cleared).
    daemon.reply = encode(VerdictReply(VerdictCode.REJECT, "weak"), 1)
    code, message = run_check(options, ENV, PASSWORD.encode(), now=now + 31)
    assert (code, message) == (1, "rejected: weak") and daemon.connections == 2
    assert backoff.active_until(str(tmp_path / "state"), now + 32, 30.0) is None


def test_a_back_off_file_from_the_future_is_ignored(tmp_path: Path) -> None:
    state = str(tmp_path)
    backoff.start(state, 10_000.0, 30.0)
    assert backoff.active_until(state, 10_010.0, 30.0) == 10_030.0
    assert backoff.active_until(state, 9_000.0, 30.0) is None  # clock went back: ask
    backoff.clear(state)
    assert backoff.active_until(state, 10_010.0, 30.0) is None


def test_unreadable_config_applies_the_line_and_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts: list[str] = []
    monkeypatch.setattr(samba_check, "alert", lambda message, **_: alerts.append(message))
    for on_undecided, expected in (("accept", 0), ("reject", 1)):
        options = CheckOptions(str(tmp_path / "gone.yaml"), on_undecided=on_undecided)
        code, message = run_check(options, ENV, PASSWORD.encode())
        assert code == expected and "cannot be read" in message
    assert len(alerts) == 2 and all("gone.yaml" in a for a in alerts)
    assert not any(PASSWORD in a for a in alerts)


def test_alert_goes_to_syslog(monkeypatch: pytest.MonkeyPatch) -> None:
    import syslog

    from adsync.hooks.alert import alert

    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "syslog", lambda prio, msg: sent.append((prio, msg)))
    alert("config gone", stderr=False)
    assert sent == [(syslog.LOG_ERR, "config gone")]
