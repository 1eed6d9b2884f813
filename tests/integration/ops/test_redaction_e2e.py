"""Issue 13 items 4 and 10 through the real daemon: what a target echoes back and what a
very short secret does to the logs, seen where an operator looks (queue list, status,
/status, the log)."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from typing import Any

from adsync.ingest.client import IngestClient
from adsync.secret import Secret, SecretIndex
from adsync.testing.leaks import REGISTRY

from .conftest import off_loop, webhook

BASE_ACCOUNT = "echo"


def forms_of(password: str) -> dict[str, str]:
    """The ways a careless target repeats a password in its error body."""
    raw = password.encode()
    return {
        "raw": password,
        "base64": base64.b64encode(raw).decode(),
        "base64url-unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "url": urllib.parse.quote(password, safe=""),
        "url-plus": urllib.parse.quote_plus(password, safe=""),
        "json": json.dumps(password)[1:-1],
        "utf16-hex": password.encode("utf-16-le").hex(),
    }


def send(socket_path: Any, account: str, password: str) -> int:
    with IngestClient.unix(socket_path) as client:
        ack = client.change(
            account=account,
            password=Secret(password),
            changed_at_ms=1_700_000_000_000,
            event_id=os.urandom(16),
        )
    return int(ack.status)


def leaks(text: str, passwords: list[str]) -> int:
    """How many passwords appear in ``text`` in any form (a count: never the value)."""
    return sum(SecretIndex.of(p).found_in(text) for p in passwords)


async def test_target_echoing_the_password_in_every_form_reaches_no_output(
    targets: Any, make_daemon: Any
) -> None:
    """Item 10: a webhook target answers 422 with the password base64-, hex-, URL-, JSON-
    and UTF-16-encoded in its reason; last_error (status, /status) and queue list keep
    the reason with *** where the password was, in every form."""
    hook = await targets()
    daemon = make_daemon({"hr": webhook(hook.url, retry={"max_rejections": 0})})
    await off_loop(daemon.start)
    passwords: list[str] = []
    for i, (name, _form) in enumerate(forms_of("x").items()):
        password = REGISTRY.password(f"Pä ss/wö+rd=€{i}-{os.urandom(4).hex()}")
        passwords.append(password)
        account = f"{BASE_ACCOUNT}{i}"
        hook.respond(422, account=account, reason=f"form {name}: {forms_of(password)[name]} bad")
        assert await off_loop(send, daemon.unix_socket, account, password) == 0

        def shown(status: dict[str, Any], name: str = name) -> bool:
            error = status["backends"][0]["last_error"] or {}
            return f"HTTP 422: form {name}:" in str(error.get("error", ""))

        await off_loop(daemon.wait_for, shown)
        status = daemon.status()
        reason = status["backends"][0]["last_error"]["error"]
        assert leaks(json.dumps(status), passwords) == 0, name
        assert reason.endswith(f": HTTP 422: form {name}: *** bad"), name  # reason kept
        table = await off_loop(daemon.cli, "status")
        assert table.returncode == 0 and leaks(table.stdout + table.stderr, passwords) == 0

    rows = await off_loop(daemon.cli, "queue", "list", "--json")
    assert rows.returncode == 0, rows.stderr
    listed = json.loads(rows.stdout)
    assert leaks(rows.stdout, passwords) == 0
    assert len(listed) == len(passwords)
    assert sorted(r["last_error"] for r in listed) == sorted(
        f"rejected 1 times (max_rejections 0): HTTP 422: form {name}: *** bad"
        for name in forms_of("x")
    )
    table = await off_loop(daemon.cli, "queue", "list")
    assert table.returncode == 0 and leaks(table.stdout, passwords) == 0
    code, body = daemon.get("/status")
    assert code == 200 and leaks(body.decode(), passwords) == 0
    assert leaks(daemon.log_path.read_text(), passwords) == 0


SHORT_ENV = "ADSYNC_TEST_SHORT_SECRET"
_MANGLED = re.compile(r"\w\*\*\*|\*\*\*\w")  # *** glued to a letter: a word cut up


async def test_one_character_configured_secret_is_refused_at_start(
    targets: Any, make_daemon: Any
) -> None:
    """Item 4, configured secrets: one of one character is refused at start; the backend
    does not start (the others do), and the log and status name it and the reference."""
    hook = await targets()
    os.environ[SHORT_ENV] = "k"
    try:
        daemon = make_daemon(
            {"hr": webhook(hook.url), "weak": webhook(hook.url, secret=f"env:{SHORT_ENV}")}
        )
        await off_loop(daemon.start)
    finally:
        os.environ.pop(SHORT_ENV, None)
    lanes = {b["name"]: b for b in daemon.status()["backends"]}
    assert (lanes["hr"]["lane"], lanes["weak"]["lane"]) == ("running", "start_failed")
    assert f"env:{SHORT_ENV}" in lanes["weak"]["last_error"]["error"]
    assert "shorter than 4 characters" in lanes["weak"]["last_error"]["error"]
    failed = [e for e in daemon.log_events() if e.get("event") == "backend_start_failed"]
    assert [e["backend"] for e in failed] == ["weak"]
    assert f"env:{SHORT_ENV}" in failed[0]["error"]


async def test_one_character_password_is_redacted_as_a_whole_token(
    targets: Any, make_daemon: Any
) -> None:
    """Item 4, passwords (AD may allow one character): redacted only as a whole token, so
    the log is not cut up into *** and the target's reason keeps its words."""
    hook = await targets()
    daemon = make_daemon({"hr": webhook(hook.url, retry={"max_rejections": 0})})
    await off_loop(daemon.start)
    hook.respond(422, account="shorty", reason="e is not accepted here, see the policy")
    assert await off_loop(send, daemon.unix_socket, "shorty", "e") == 0

    def shown(status: dict[str, Any]) -> bool:
        error = status["backends"][0]["last_error"] or {}
        return "policy" in str(error.get("error", ""))

    await off_loop(daemon.wait_for, shown)
    error = daemon.status()["backends"][0]["last_error"]["error"]
    assert error.endswith(": HTTP 422: *** is not accepted here, see the policy"), error
    lines = daemon.log_path.read_text().splitlines()
    assert [line for line in lines if _MANGLED.search(line)] == []
    events = [e.get("event", "") for e in daemon.log_events()]
    assert all(re.fullmatch(r"[a-z_]+", e) for e in events), events
    assert "daemon_ready" in events
