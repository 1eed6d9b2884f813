"""The redaction step: a live password never reaches the log output, whatever path it took."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import urllib.parse
import warnings
from collections.abc import Iterator

import pytest
import structlog

from adsync.observe.logs import configure_logging, is_secret_key, redact_text
from adsync.secret import Secret, encoded_forms

PASSWORD = 'Pä"ss\\wörd€1 %/&'


def absent(value: str, text: str) -> bool:
    """True when ``value`` is not in ``text`` (asserted as a bool, so a failure prints neither)."""
    return value not in text


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    configure_logging("info", "json", io.StringIO())


@pytest.fixture
def secret() -> Secret:
    return Secret(PASSWORD)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_password_under_an_innocent_key(out: io.StringIO, secret: Secret) -> None:
    structlog.get_logger("t").info("stored", note=secret.reveal(), nested={"a": [secret.reveal()]})
    (rec,) = records(out)
    assert rec["note"] == "***"
    assert rec["nested"] == {"a": ["***"]}
    assert absent(PASSWORD, out.getvalue())


def test_password_inside_an_fstring_message(out: io.StringIO, secret: Secret) -> None:
    structlog.get_logger("t").warning(f"user alice set {secret.reveal()} just now")
    (rec,) = records(out)
    assert rec["event"] == "user alice set *** just now"


def test_secret_object_and_secret_looking_keys(out: io.StringIO, secret: Secret) -> None:
    structlog.get_logger("t").info(
        "keys", value=secret, psk="not-live-but-a-psk", api_key="k", key_id=7, has_password=True
    )
    (rec,) = records(out)
    assert rec["value"] == "***"
    assert rec["psk"] == "***"
    assert rec["api_key"] == "***"
    assert rec["key_id"] == 7  # not a secret-looking key
    assert rec["has_password"] is True  # a boolean cannot hold a password


def test_exception_message_and_traceback(out: io.StringIO, secret: Secret) -> None:
    def fail(pw: str) -> None:
        raise ValueError(f"target refused {pw}")

    try:
        fail(secret.reveal())
    except ValueError:
        structlog.get_logger("t").exception("delivery_error")
    (rec,) = records(out)
    assert "Traceback" in str(rec["exception"])
    assert "target refused ***" in str(rec["exception"])
    assert absent(PASSWORD, out.getvalue())


def test_console_format_exception(secret: Secret) -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)
    try:
        raise RuntimeError(f"boom {secret.reveal()}")
    except RuntimeError:
        structlog.get_logger("t").exception("failed", detail=secret.reveal())
    text = stream.getvalue()
    assert "boom ***" in text
    assert absent(PASSWORD, text)


def test_stdlib_record_from_aiohttp(out: io.StringIO, secret: Secret) -> None:
    try:
        raise ConnectionError(f"peer sent {secret.reveal()}")
    except ConnectionError:
        logging.getLogger("aiohttp.server").exception("Error handling request %s", secret.reveal())
    logging.getLogger("aiohttp.access").info(
        "%s %s", "POST", f"/hook?pw={urllib.parse.quote(secret.reveal(), safe='')}"
    )
    logging.getLogger("asyncio").error("Task exception: %r", {"body": secret.reveal()})
    recs = records(out)
    assert [r["logger"] for r in recs] == ["aiohttp.server", "aiohttp.access", "asyncio"]
    assert recs[0]["event"] == "Error handling request ***"
    assert "peer sent ***" in str(recs[0]["exception"])
    # (Not "pw=***": another test's live Secret("pw") may rightly scrub "pw" too.)
    assert str(recs[1]["event"]).startswith("POST /hook?") and str(recs[1]["event"]).endswith(
        "=***"
    )
    text = out.getvalue()
    assert absent(PASSWORD, text)
    assert absent(urllib.parse.quote(PASSWORD, safe=""), text)


def test_stdlib_extra_fields_are_redacted(out: io.StringIO, secret: Secret) -> None:
    logging.getLogger("third.party").info("x", extra={"payload": secret.reveal(), "token": "t"})
    (rec,) = records(out)
    assert rec["payload"] == "***"
    assert rec["token"] == "***"


def test_json_escaped_and_repr_forms(out: io.StringIO, secret: Secret) -> None:
    body = json.dumps({"password": secret.reveal()})
    structlog.get_logger("t").info("sent", body=body, as_repr=repr(secret.reveal()))
    text = out.getvalue()
    assert absent(json.dumps(PASSWORD)[1:-1], text)
    assert absent(repr(PASSWORD)[1:-1], text)
    assert absent(PASSWORD, text)


def test_every_form_the_one_scrubber_knows_is_redacted(out: io.StringIO, secret: Secret) -> None:
    """The log step and ``adsync.secret.scrub`` share one rule: every form it lists counts."""
    forms = sorted(encoded_forms(PASSWORD))
    structlog.get_logger("t").info("echoed", forms=forms)
    (rec,) = records(out)
    assert rec["forms"] == ["***"] * len(forms)
    hex_form, b64_form = PASSWORD.encode().hex(), base64.b64encode(PASSWORD.encode()).decode()
    assert {hex_form, b64_form, html.escape(PASSWORD)} <= set(forms)


def test_bytes_and_arbitrary_objects(out: io.StringIO, secret: Secret) -> None:
    class Leaky:
        def __init__(self, pw: str) -> None:
            self.pw = pw

        def __str__(self) -> str:
            return f"Leaky({self.pw})"

    structlog.get_logger("t").info(
        "objects",
        raw=secret.reveal_bytes(),
        obj=Leaky(secret.reveal()),
        exc=OSError(secret.reveal()),
    )
    (rec,) = records(out)
    assert rec["obj"] == "Leaky(***)"
    assert rec["raw"] == "***"
    assert absent(PASSWORD, out.getvalue())


def test_password_as_a_dict_key(out: io.StringIO, secret: Secret) -> None:
    structlog.get_logger("t").info("map", seen={secret.reveal(): 1})
    (rec,) = records(out)
    assert rec["seen"] == {"***": 1}


def test_positional_arguments(out: io.StringIO, secret: Secret) -> None:
    structlog.get_logger("t").info("changed %s for %s", secret.reveal(), "alice")
    (rec,) = records(out)
    assert rec["event"] == "changed *** for alice"


def test_warnings_are_captured_and_redacted(out: io.StringIO, secret: Secret) -> None:
    # What warnings.warn calls once captured (pytest records real warnings itself).
    warnings.showwarning(f"deprecated use of {secret.reveal()}", UserWarning, __file__, 1)
    assert "deprecated use of ***" in out.getvalue()
    assert absent(PASSWORD, out.getvalue())


def test_new_secrets_are_picked_up_and_dead_ones_forgotten(out: io.StringIO) -> None:
    first = Secret("first-Secret-Value")
    assert redact_text("a first-Secret-Value b") == "a *** b"
    second = Secret("second-Secret-Value")
    assert redact_text("first-Secret-Value second-Secret-Value") == "*** ***"
    del first
    import gc

    gc.collect()
    assert redact_text("first-Secret-Value") == "first-Secret-Value"
    assert second.reveal() == "second-Secret-Value"


def test_level_filtering_and_reconfigure() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    structlog.get_logger("t").info("hidden")
    logging.getLogger("aiohttp").info("hidden too")
    structlog.get_logger("t").warning("shown")
    assert [r["event"] for r in records(stream)] == ["shown"]
    assert len(logging.getLogger().handlers) == 1
    configure_logging("warning", "json", stream)
    assert len(logging.getLogger().handlers) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging("loud", "json", io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging("info", "xml", io.StringIO())


@pytest.mark.parametrize(
    ("key", "secret_looking"),
    [
        ("password", True),
        ("bind_password", True),
        ("passwd", True),
        ("secret", True),
        ("psk", True),
        ("token", True),
        ("master_key", True),
        ("key", True),
        ("Authorization", True),
        ("account", False),
        ("key_id", False),
        ("backend", False),
        ("event", False),
    ],
)
def test_secret_looking_keys(key: str, secret_looking: bool) -> None:
    assert is_secret_key(key) is secret_looking


def test_digest_helper_is_stable() -> None:
    assert digest(PASSWORD) == digest(PASSWORD)


async def test_real_aiohttp_server_error_is_redacted(out: io.StringIO, secret: Secret) -> None:
    """aiohttp's own "Error handling request" record (with traceback) goes through redaction."""
    import aiohttp
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        raise RuntimeError(f"cannot store {secret.reveal()}")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/", data=b"x") as response:
                assert response.status == 500
    finally:
        await runner.cleanup()
    text = out.getvalue()
    server_errors = [r for r in records(out) if r["logger"] == "aiohttp.server"]
    assert server_errors, "aiohttp logged no server error"
    assert "cannot store ***" in str(server_errors[0]["exception"])
    assert absent(PASSWORD, text)


def test_reconfigure_leaves_only_its_own_handler() -> None:
    """A foreign handler would see stdlib records before redaction: a (re)configuration
    removes every handler but the one it installs."""
    other = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(other)
    configure_logging("info", "json", io.StringIO())
    assert other not in root.handlers
    assert len(root.handlers) == 1


def test_threads_logging_while_secrets_come_and_go(out: io.StringIO) -> None:
    """The live-secret index is shared: threads that log at once never see it half updated."""
    import threading

    errors: list[BaseException] = []

    def work(n: int) -> None:
        log = structlog.get_logger("t")
        try:
            for i in range(150):
                value = f"thread-{n}-Secret-{i}-Value"
                secret = Secret(value)
                log.info("tick", note=f"set {secret.reveal()} now")
                del secret
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    notes = [rec["note"] for rec in records(out)]
    assert len(notes) == 600
    assert all(note == "set *** now" for note in notes)


def test_adsync_events_reach_every_root_handler_rendered_once(
    out: io.StringIO, secret: Secret
) -> None:
    """structlog events skip the stdlib hop (speed) but still reach a handler added after
    the configuration (pytest's caplog): the same redacted line, with the record's level,
    at its level."""
    from adsync.observe.logs import make_formatter

    seen: list[tuple[int, str]] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelno, self.format(record)))

    kept = Kept(level=logging.INFO)
    kept.setFormatter(make_formatter("json"))
    root = logging.getLogger()
    root.addHandler(kept)
    try:
        log = structlog.get_logger("adsync.test")
        log.debug("below the kept handler's level")
        log.info("delivery", note=f"said {secret.reveal()}")
        log.warning("careful", attempts=2)
    finally:
        root.removeHandler(kept)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == [
        "below the kept handler's level",
        "delivery",
        "careful",
    ]
    assert [level for level, _ in seen] == [logging.INFO, logging.WARNING]
    assert [text for _, text in seen] == lines[1:]  # rendered once, passed through as is
    assert json.loads(seen[0][1])["note"] == "said ***"
    assert absent(PASSWORD, out.getvalue()) and absent(PASSWORD, repr(seen))


def test_with_no_handler_left_warnings_still_reach_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A caller that put back an empty root logger (the demo restores what it found) still
    sees adsync's warnings on stderr, as the stdlib's last resort shows its own."""
    configure_logging("info", "json", io.StringIO())
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    try:
        structlog.get_logger("adsync.test").info("quiet")
        structlog.get_logger("adsync.test").warning("loud", attempts=3)
    finally:
        for handler in saved:
            root.addHandler(handler)
    err = capsys.readouterr().err
    assert "quiet" not in err
    assert json.loads(err.strip())["event"] == "loud"
