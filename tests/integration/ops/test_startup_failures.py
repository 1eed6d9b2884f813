"""Issue 13, items 3, 8, 9 and 11, through a real ``adsync run`` (and the CLI):

* a config error never repeats a URL's credentials or query string (check-config, run,
  the daemon's log on a refused reload);
* a master key rotation stopped between its rewrap and its rename is named, with the
  command that finishes it (run and ``keys check``);
* a secret, the master key or the PSK open to others stops the start; a config open to
  others is a warning; both name the file and the ``chmod`` (the rule doctor uses too);
* every start-up failure is one line on stderr, a log event and the documented exit
  code: a damaged or foreign queue, a port in use, a state directory the daemon's user
  cannot write, a missing secret (named with its config line; the others still run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.queue.keys import FileKeyProvider
from adsync.queue.rotation import rewrap_keys
from adsync.secret import Secret
from adsync.startup import EXIT_CONFIG, EXIT_FILES, EXIT_LISTEN, EXIT_QUEUE
from adsync.testing.daemon import DaemonProcess, base_config

URL_PASSWORD = "S3cretUrlPw9"
URL_TOKEN = "Qtok7Secret42"
SECRET_ENV = "ADSYNC_STARTUP_TEST_SECRET"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scim(url: str = "https://127.0.0.1:9/scim", token: str = f"env:{SECRET_ENV}") -> dict[str, Any]:
    return {"type": "scim", "url": url, "token": token, "timeout": "2s"}


def write_config(workdir: Path, backends: dict[str, Any], **sections: Any) -> Path:
    path = workdir / "adsync.yaml"
    path.write_text(json.dumps(base_config(workdir, backends, **sections), indent=2))
    path.chmod(0o600)
    return path


def adsync(
    *args: str, config: Path, timeout: float = 60.0, as_user: int | None = None
) -> subprocess.CompletedProcess[str]:
    """One CLI command; ``run`` is expected to stop by itself (a start-up failure)."""
    cmd = [sys.executable, "-m", "adsync", *args, "--config", str(config)]
    if as_user is not None:
        cmd = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *cmd]
    env = {**os.environ, SECRET_ENV: "startup-test-token"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def events(stderr: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def plain_lines(stderr: str) -> list[str]:
    """What stderr says besides the JSON log: the operator's lines."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


def assert_one_line_failure(result: subprocess.CompletedProcess[str], code: int, event: str) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = plain_lines(result.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("adsync: ")
    logged = [e for e in events(result.stderr) if e.get("event") == event]
    assert len(logged) == 1 and logged[0]["level"] == "error", events(result.stderr)
    assert logged[0]["exit_code"] == code
    return lines[0]


# --- item 3: URL credentials ----------------------------------------------------------------


def test_url_credentials_are_refused_and_never_repeated(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"idp": scim(f"http://admin:{URL_PASSWORD}@idp.example/scim?token={URL_TOKEN}")}
    )
    for command in ("check-config", "run"):
        result = adsync(command, config=config)
        output = result.stdout + result.stderr
        assert result.returncode == EXIT_CONFIG, output
        assert URL_PASSWORD not in output and URL_TOKEN not in output and "admin" not in output
        assert "must not hold credentials" in output and "secret fields" in output


def test_a_plain_http_url_error_shows_no_query_string(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"idp": scim(f"http://idp.example/scim?token={URL_TOKEN}")})
    result = adsync("check-config", config=config)
    assert result.returncode == EXIT_CONFIG
    assert URL_TOKEN not in result.stdout + result.stderr
    assert "http://idp.example/scim: passwords travel in this request" in result.stderr


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    os.environ[SECRET_ENV] = "startup-test-token"
    proc = DaemonProcess(tmp_path, base_config(tmp_path, {"idp": scim()}))
    try:
        yield proc
    finally:
        try:
            proc.stop(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.environ.pop(SECRET_ENV, None)


def wait_event(daemon: DaemonProcess, name: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in daemon.log_events():
            if event.get("event") == name:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no {name} in the log:\n{daemon.log_tail()}")


def test_a_refused_reload_does_not_log_url_credentials(daemon: DaemonProcess) -> None:
    daemon.start()
    bad = json.loads(daemon.config_path.read_text())
    bad["backends"]["idp"]["url"] = f"https://admin:{URL_PASSWORD}@idp.example/?t={URL_TOKEN}"
    daemon.config_path.write_text(json.dumps(bad))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    refused = wait_event(daemon, "config_reload_refused")
    assert "must not hold credentials" in refused["error"]
    log = daemon.log_path.read_text()
    assert URL_PASSWORD not in log and URL_TOKEN not in log


# --- item 8: an interrupted master key rotation --------------------------------------------


def interrupt_master_rotation(daemon: DaemonProcess) -> Path:
    """The steps of ``keys rotate --master`` up to the committed rewrap, not the rename."""
    provider = FileKeyProvider(daemon.config["keys"]["path"])
    old = provider.master_key()
    new = os.urandom(32)
    provider.stage(new)
    conn = sqlite3.connect(daemon.config["queue"]["path"], isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rewrap_keys(conn, old, new)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return provider.staged_path


def test_interrupted_master_key_rotation_is_named_with_the_command(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    with IngestClient.unix(daemon.unix_socket) as client:  # sealed data in the queue
        ack = client.change(
            account="rotor",
            password=Secret("Rotation-Pw-1!"),
            changed_at_ms=1_700_000_000_000,
            event_id=os.urandom(16),
        )
    assert int(ack.status) == 0
    assert daemon.stop() == 0
    staged = interrupt_master_rotation(daemon)

    run = adsync("run", config=daemon.config_path)
    line = assert_one_line_failure(run, EXIT_QUEUE, "master_key_rotation_interrupted")
    assert str(staged) in line and "run `adsync keys rotate --master`" in line
    check = adsync("keys", "check", config=daemon.config_path)
    assert check.returncode == EXIT_QUEUE and "Traceback" not in check.stderr
    assert str(staged) in check.stderr and "adsync keys rotate --master" in check.stderr
    doctor = adsync(
        "doctor", "--json", "--smb-conf", str(daemon.workdir / "none"), config=daemon.config_path
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    queue_check = checks[f"queue {daemon.config['queue']['path']}"]
    assert queue_check["status"] == "fail" and str(staged) in queue_check["detail"]
    assert queue_check["fix"] == f"adsync keys rotate --master --config {daemon.config_path}"

    finish = adsync("keys", "rotate", "--master", config=daemon.config_path)
    assert finish.returncode == 0, finish.stderr
    assert "finished an interrupted master key rotation" in finish.stdout
    check = adsync("keys", "check", config=daemon.config_path)
    assert check.returncode == 0 and "every one opens" in check.stdout
    daemon.start()  # and the daemon opens the queue again


def test_a_wrong_master_key_without_a_staged_one_says_wrong_key(daemon: DaemonProcess) -> None:
    daemon.start()
    assert daemon.stop() == 0
    key = Path(daemon.config["keys"]["path"])
    key.write_bytes(os.urandom(32))  # not the queue's key; no master.key.new beside it
    run = adsync("run", config=daemon.config_path)
    line = assert_one_line_failure(run, EXIT_QUEUE, "queue_open_failed")
    assert "does not open this queue's data keys" in line and ".new" not in line


# --- item 9: files that should be private ---------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_secret_file_open_to_others_stops_the_start(tmp_path: Path, mode: int) -> None:
    token = tmp_path / "idp.token"
    token.write_text("startup-test-token\n")
    token.chmod(mode)
    config = write_config(tmp_path, {"idp": scim(token=f"file:{token}")})
    line = assert_one_line_failure(
        adsync("run", config=config), EXIT_FILES, "secret_file_not_private"
    )
    assert f"secret file {token} has mode {mode:04o}" in line
    assert line.endswith(f"run: chmod 0600 {token}")
    assert not (tmp_path / "queue.db").exists()  # refused before anything opened
    doctor = adsync("doctor", "--json", "--smb-conf", str(tmp_path / "none"), config=config)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks[f"secret file idp.token {token}"]["fix"] == f"chmod 0600 {token}"


def test_the_master_key_and_the_psk_open_to_others_stop_the_start(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, {"idp": scim()}, ingest={"tcp": f"127.0.0.1:{port}"})
    key, psk = tmp_path / "master.key", tmp_path / "filter.key"
    key.write_bytes(os.urandom(32))
    psk.write_bytes(os.urandom(32))
    psk.chmod(0o600)
    key.chmod(0o640)
    line = assert_one_line_failure(
        adsync("run", config=config), EXIT_FILES, "secret_file_not_private"
    )
    assert line.endswith(f"run: chmod 0600 {key}") and "key file" in line
    key.chmod(0o600)
    psk.chmod(0o644)
    line = assert_one_line_failure(
        adsync("run", config=config), EXIT_FILES, "secret_file_not_private"
    )
    assert line.endswith(f"run: chmod 0600 {psk}")


def test_a_config_file_open_to_others_is_a_warning_naming_the_chmod(
    daemon: DaemonProcess,
) -> None:
    daemon.config_path.chmod(0o644)
    daemon.start()
    warning = wait_event(daemon, "config_file_not_private")
    assert warning["level"] == "warning"
    assert warning["fix"] == f"chmod 0600 {daemon.config_path}"
    text = daemon.log_path.read_text()
    assert f"warning: config file {daemon.config_path} has mode 0644" in text


# --- item 11: start-up failures are one line ------------------------------------------------


def test_a_damaged_queue_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"idp": scim()})
    queue = tmp_path / "queue.db"
    queue.write_bytes(b"\x5a" * 8192)
    queue.chmod(0o600)
    line = assert_one_line_failure(adsync("run", config=config), EXIT_QUEUE, "queue_open_failed")
    assert str(queue) in line and "file is not a database" in line
    check = adsync("keys", "check", config=config)  # docs: exit 2 when the queue does not open
    assert check.returncode == 2 and "Traceback" not in check.stderr
    assert plain_lines(check.stderr) == [
        f"adsync keys: cannot open the queue {queue}: SQLite cannot use the file: "
        "file is not a database"
    ]


def test_a_foreign_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"idp": scim()})
    queue = tmp_path / "queue.db"
    conn = sqlite3.connect(queue)
    conn.execute("CREATE TABLE inventory (item TEXT)")
    conn.commit()
    conn.close()
    line = assert_one_line_failure(adsync("run", config=config), EXIT_QUEUE, "queue_open_failed")
    assert "not an adsync queue" in line and str(queue) in line
    conn = sqlite3.connect(queue)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert names == {"inventory"}


@pytest.mark.parametrize("which", ["metrics.listen", "ingest.tcp"])
def test_a_port_in_use(tmp_path: Path, which: str) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    address = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        if which == "metrics.listen":
            config = write_config(tmp_path, {"idp": scim()}, metrics={"listen": address})
        else:
            config = write_config(tmp_path, {"idp": scim()}, ingest={"tcp": address})
        result = adsync("run", config=config)
    finally:
        holder.close()
    line = assert_one_line_failure(result, EXIT_LISTEN, "listen_address_in_use")
    assert line.startswith(f"adsync: {which} {address}: the address is already in use")
    assert not (tmp_path / "filter.sock").exists()  # the socket was closed again


def test_a_socket_path_held_by_another_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"idp": scim()})
    sock = tmp_path / "filter.sock"
    sock.write_text("not a socket")
    line = assert_one_line_failure(adsync("run", config=config), EXIT_LISTEN, "listen_failed")
    assert (
        line
        == f"adsync: ingest.unix_socket: {sock} exists and is not a socket; refusing to replace it"
    )
    assert sock.read_text() == "not a socket"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another uid can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="adsync-startup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


NOBODY = 65534


def run_as_nobody(shared_dir: Path, queue: Path) -> str:
    """``adsync run`` as uid 65534 with its key and socket in a directory of its own."""
    own = shared_dir / "own"
    own.mkdir()
    os.chown(own, NOBODY, NOBODY)
    config = base_config(own, {"idp": scim()}, queue={"path": str(queue)})
    config["ingest"]["allowed_uids"] = [0]
    path = own / "adsync.yaml"
    path.write_text(json.dumps(config))
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o600)
    result = adsync("run", config=path, as_user=NOBODY)
    return assert_one_line_failure(result, EXIT_FILES, "permission_denied")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs the daemon as another uid")


@needs_root
def test_a_state_directory_the_daemon_user_cannot_write(shared_dir: Path) -> None:
    state = shared_dir / "state"  # root's, 0755: not writable for the daemon's user
    state.mkdir(mode=0o755)
    line = run_as_nobody(shared_dir, state / "queue.db")
    assert f"{state / 'queue.db.lock'}: permission denied for the daemon's user nobody" in line
    assert line.endswith(f"chown nobody {state} && chmod 0700 {state}")


@needs_root
def test_a_state_directory_the_daemon_user_cannot_create(shared_dir: Path) -> None:
    parent = shared_dir / "lib"
    parent.mkdir(mode=0o755)
    state = parent / "adsync"
    line = run_as_nobody(shared_dir, state / "queue.db")
    assert line.endswith(f"mkdir -m 0700 {state} && chown nobody {state}")
    assert not state.exists()


@needs_root
def test_a_queue_file_of_another_user(shared_dir: Path) -> None:
    state = shared_dir / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOBODY)
    queue = state / "queue.db"
    queue.write_bytes(b"")
    queue.chmod(0o600)  # root's
    line = run_as_nobody(shared_dir, queue)
    assert line.endswith(f"chown nobody {queue} && chmod 0600 {queue}")


def test_a_missing_secret_names_the_backend_and_its_line_and_the_others_run(
    daemon: DaemonProcess,
) -> None:
    missing = daemon.workdir / "absent.token"
    daemon.config["backends"]["other"] = scim(token="env:ADSYNC_STARTUP_UNSET_VAR")
    daemon.config["backends"]["third"] = scim(token=f"file:{missing}")
    daemon.config_path.write_text(json.dumps(daemon.config, indent=2))
    os.environ.pop("ADSYNC_STARTUP_UNSET_VAR", None)
    daemon.start()  # the daemon runs: idp starts, the two others wait for a reload
    text = daemon.log_path.read_text()
    lines = daemon.config_path.read_text().splitlines()
    env_line = 1 + next(i for i, t in enumerate(lines) if "ADSYNC_STARTUP_UNSET_VAR" in t)
    file_line = 1 + next(i for i, t in enumerate(lines) if str(missing) in t)
    assert (
        f"adsync: {daemon.config_path}:{env_line}: backends.other.token: "
        "environment variable ADSYNC_STARTUP_UNSET_VAR is not set (backend other does not start"
    ) in text
    assert f"adsync: {daemon.config_path}:{file_line}: backends.third.token: cannot read" in text
    logged = {
        e["backend"]: e
        for e in daemon.log_events()
        if e.get("event") == "backend_secret_unavailable"
    }
    assert set(logged) == {"other", "third"}
    assert logged["other"]["where"] == f"{daemon.config_path}:{env_line}: backends.other.token"
    ready = wait_event(daemon, "daemon_ready")
    assert ready["backends"] == ["idp"] and ready["not_started"] == ["other", "third"]
    assert "Traceback" not in text
