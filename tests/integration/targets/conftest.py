"""Issue 6 acceptance rig: the real daemon (``adsync run`` subprocess) against in-process fakes.

A *kit* knows one target type: how to start its fake with a set of users, the
backend config that points the daemon at it, and what the right request for a
change looks like on that target's wire. A *rig* is one running daemon with a
fresh queue; tests send changes through ``adsync test`` (a subprocess) or the
wire protocol (``IngestClient``, called through a thread so the fakes keep
serving) and read outcomes through the queue's operator API and ``adsync queue
list``. Every password used is registered with the session leak scanner.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from adsync.ingest.client import IngestClient, change_message
from adsync.ingest.codec import VerdictReply
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import DeliveryInfo
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.contract import FakeTarget, Received, capture_all_logs, sha256_hex
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.domino import FakeDomino
from adsync.testing.leaks import REGISTRY, find_in_bytes
from adsync.testing.oim import FakeOim
from adsync.testing.scim import FakeScim
from adsync.testing.soffid import FakeSoffid

# --- passwords ---------------------------------------------------------------------------------

# Every test password is PREFIX + an alphanumeric token, so its encodings can be written out by
# hand (independently of the plugins' encoders): Soffid's eris encoding and XML text escaping.
PREFIX = "Pässwörd€1 <&>\"'"
PREFIX_ERIS = "P%C3%A4ssw%C3%B6rd%E2%82%AC1%20%3C%26%3E%22%27"


@dataclass(frozen=True)
class Pw:
    token: str

    @property
    def value(self) -> str:
        return PREFIX + self.token

    @property
    def eris(self) -> str:
        return PREFIX_ERIS + self.token

    @property
    def sha(self) -> str:
        return sha256_hex(self.value)

    def __repr__(self) -> str:  # a failing assertion must never print the password
        return f"Pw(sha256:{self.sha[:12]})"


def new_password(label: str = "pw") -> Pw:
    assert label.isalnum()
    pw = Pw(label + os.urandom(4).hex())
    REGISTRY.password(pw.value)
    return pw


def service_secret(label: str) -> str:
    """A target's service credential: a secret too, so the leak scan looks for it."""
    return REGISTRY.password(f"{label}-{os.urandom(6).hex()}")


def no_password_in(data: bytes | str, where: str) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    findings = find_in_bytes(raw, REGISTRY.passwords, where)
    assert not findings, [str(f) for f in findings]


# --- kits: one per target type -----------------------------------------------------------------

AGENT = "AD adsync.test"
AGENT_ERIS = "AD%20adsync%2Etest"
OIM_USER = "xelsysadm"
DOMINO_USER = "adsync"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OIM = "http://xmlns.oracle.com/OIM/provisioning"
WRAPPED = f"{{{SOAP}}}Body/{{{OIM}}}processRequest/sOAPElement"
SPML_SEARCH = "urn:oasis:names:tc:SPML:2:0:search"
SPML_PASS = "urn:oasis:names:tc:SPML:2:0:password"
DSML = "urn:oasis:names:tc:DSML:2:0:core"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def guid_of(account: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_DNS, account + ".adsync.test")


def retry(**overrides: Any) -> dict[str, Any]:
    """Quick retries so tests finish fast; never a timing assertion on them."""
    settings: dict[str, Any] = {
        "backoff": {"initial": "100ms", "max": "400ms", "factor": 2, "jitter": 0.1},
        "max_rejections": 5,
        "unknown_user_grace": "1h",
        "expire_after": "1h",
    }
    settings.update(overrides)
    return settings


def write_secret(directory: Path, name: str, value: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(value)
    path.chmod(0o600)
    return f"file:{path}"


class Kit:
    """What the tests need to know about one target type."""

    type: str
    operation: str  # the fake's name for the request that carries the password
    rejects: bool  # can the target refuse a password synchronously?
    lookup_first = True  # the user is looked up before the password is sent

    def __init__(self, secrets: Path) -> None:
        self.secrets = secrets

    def fake(self, accounts: list[str]) -> FakeTarget:
        raise NotImplementedError

    def add_user(self, fake: Any, account: str) -> None:
        raise NotImplementedError

    def backend(self, *fakes: Any, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    def wire_guid(self, account: str) -> uuid.UUID | None:
        return None

    def password_requests(self, fake: FakeTarget, account: str | None = None) -> list[Received]:
        return [
            r
            for r in fake.received
            if r.operation == self.operation and (account is None or r.account == account)
        ]

    def assert_request(
        self, fake: Any, account: str, pw: Pw, event_id: str, changed_at_ms: int | None
    ) -> None:
        raise NotImplementedError


class SoffidKit(Kit):
    """GET /propagatepass: the query string's bytes are fixed by the eris client."""

    type = "soffid"
    operation = "propagate"
    rejects = False  # Soffid queues every propagation; its policy shows only in the check
    lookup_first = False  # one request: the propagation itself finds the account

    def fake(self, accounts: list[str]) -> FakeSoffid:
        return FakeSoffid(agent=AGENT, accounts=set(accounts))

    def add_user(self, fake: Any, account: str) -> None:
        fake.accounts.add(account)

    def backend(self, *fakes: Any, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "type": "soffid",
            "urls": [f.url for f in fakes],
            "agent": AGENT,
            "timeout": "2s",
            "retry": retry(),
        }
        config.update(overrides)
        return config

    def assert_request(
        self, fake: Any, account: str, pw: Pw, event_id: str, changed_at_ms: int | None
    ) -> None:
        (request,) = self.password_requests(fake, account)
        assert request.method == "GET"
        expected = f"/propagatepass?user={account}&password={pw.eris}&domain={AGENT_ERIS}"
        assert request.target_sha256 == sha256_hex(expected), "request line differs from eris'"
        assert request.password_sha256 == pw.sha
        assert request.extra["domain"] == AGENT
        assert "Authorization" not in request.headers  # like eris: nothing preemptive


class OimKit(Kit):
    """OIM's SPML-DSML service: OIMUser header, processRequest/sOAPElement, search then
    setPassword (the fake checks the SPML schemas and refuses what the service refuses)."""

    type = "oim_spml"
    operation = "setPassword"
    rejects = True

    def __init__(self, secrets: Path) -> None:
        super().__init__(secrets)
        self.service_password = service_secret("oim")

    def fake(self, accounts: list[str]) -> FakeOim:
        users = {a: str(1000 + i) for i, a in enumerate(accounts)}
        return FakeOim(username=OIM_USER, password=self.service_password, users=users)

    def add_user(self, fake: Any, account: str) -> None:
        fake.users[account] = str(5000 + len(fake.users))

    def backend(self, *fakes: Any, **overrides: Any) -> dict[str, Any]:
        (fake,) = fakes
        config: dict[str, Any] = {
            "type": "oim_spml",
            "url": fake.endpoint,
            "username": OIM_USER,
            "password": write_secret(self.secrets, "oim.secret", self.service_password),
            "match_attribute": "Users.User ID",
            "timeout": "2s",
            "retry": retry(),
        }
        config.update(overrides)
        return config

    def assert_request(
        self, fake: Any, account: str, pw: Pw, event_id: str, changed_at_ms: int | None
    ) -> None:
        assert not fake.invalid, [r.problem for r in fake.invalid]
        searches = [r for r in fake.received if r.operation == "search" and r.account == account]
        (search,) = searches
        (setpw,) = self.password_requests(fake, account)
        for request in (search, setpw):
            assert request.valid  # the fake validated it against the SPML v2 + DSML schemas
            assert request.method == "POST" and request.path == fake.path
            assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
            assert "SOAPAction" in request.headers
            root = etree.fromstring(request.body)
            (user,) = root.find(f"{{{SOAP}}}Header")
            assert user.tag == f"{{{OIM}}}OIMUser"
            assert user.findtext(f"{{{OIM}}}OIMUserId") == OIM_USER
            secret = user.findtext(f"{{{OIM}}}OIMUserPassword") or ""
            assert sha256_hex(secret) == sha256_hex(self.service_password)
        (query,) = etree.fromstring(search.body).find(WRAPPED)
        assert query.tag == f"{{{SPML_SEARCH}}}searchRequest"
        assert query.get("requestID") == f"adsync-{event_id}-search"
        assert query.find(f"{{{SPML_SEARCH}}}query").get("scope") == "pso"
        match = query.find(f"{{{SPML_SEARCH}}}query/{{{DSML}}}filter/{{{DSML}}}equalityMatch")
        assert match is not None and match.get("name") == "Users.User ID"
        assert match.findtext(f"{{{DSML}}}value") == account
        (request,) = etree.fromstring(setpw.body).find(WRAPPED)
        assert request.tag == f"{{{SPML_PASS}}}setPasswordRequest"
        assert request.get("requestID") == f"adsync-{event_id}-setpw"
        pso = request.find(f"{{{SPML_PASS}}}psoID")
        assert pso is not None and pso.get("ID") == fake.users[account]
        new = request.findtext(f"{{{SPML_PASS}}}password") or ""
        assert sha256_hex(new) == pw.sha
        # The text escaping, as bytes: <, & and > escaped; quotes as they are.
        escaped = (PREFIX.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")) + (
            pw.token
        )
        wanted = f"<pass:password>{escaped}</pass:password>".encode()
        assert wanted in setpw.body, "the password element's bytes differ"


class DominoKit(Kit):
    """DRAPI: bearer login, Person lookup by objectGUID (or account), request document."""

    type = "domino"
    operation = "create"
    rejects = False  # the Request Processor applies requests later; DRAPI only stores them

    def __init__(self, secrets: Path) -> None:
        super().__init__(secrets)
        self.service_password = service_secret("domino")

    def fake(self, accounts: list[str]) -> FakeDomino:
        return FakeDomino(
            username=DOMINO_USER,
            password=self.service_password,
            people={a: guid_of(a) for a in accounts},
        )

    def add_user(self, fake: Any, account: str) -> None:
        fake.people[account] = guid_of(account)

    def wire_guid(self, account: str) -> uuid.UUID | None:
        return guid_of(account)

    def backend(self, *fakes: Any, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "type": "domino",
            "servers": [f.url for f in fakes],
            "username": DOMINO_USER,
            "password": write_secret(self.secrets, "domino.secret", self.service_password),
            "directory": {"account_item": "ShortName"},  # `adsync test` sends no objectGUID
            "timeout": "2s",
            "retry": retry(),
        }
        config.update(overrides)
        return config

    def assert_request(
        self,
        fake: Any,
        account: str,
        pw: Pw,
        event_id: str,
        changed_at_ms: int | None,
        expire_after: float = 3600.0,
    ) -> None:
        assert not fake.invalid, [r.problem for r in fake.invalid]
        (create,) = self.password_requests(fake, account)
        assert create.method == "POST" and create.path == "/api/v1/document"
        assert parse_qs(urlsplit(create.raw_target).query) == {"dataSource": ["adpwsync"]}
        assert create.headers["Content-Type"].split(";")[0] == "application/json"
        assert create.headers["Authorization"].removeprefix("Bearer ") in fake.tokens
        document = json.loads(create.body)
        assert sha256_hex(document.pop("NewPassword")) == pw.sha
        expires = document.pop("ExpiresAt")
        assert document == {
            "Form": "ADPasswordChangeRequest",
            "ADObjectGUID": str(guid_of(account)),
            "SAMAccountName": account,
            "EventID": event_id,
            "PasswordTypes": ["HTTP"],
            "@encryption": {},  # the password item is encrypted (DRAPI encryptsign.md)
        }
        if changed_at_ms is not None:  # Domino's request expiration = changed_at + expire_after
            at = datetime.fromtimestamp(changed_at_ms / 1000, UTC) + timedelta(seconds=expire_after)
            assert expires == at.strftime("%Y-%m-%dT%H:%M:%SZ")
        queries = [r for r in fake.received if r.operation == "query" and r.account == account]
        assert queries, "no directory lookup"
        lookup = json.loads(queries[-1].body)
        by_guid = changed_at_ms is not None
        assert lookup["query"] == (
            "Form = 'Person' and ADObjectGUID = ?value"
            if by_guid
            else "Form = 'Person' and ShortName = ?value"
        )
        assert lookup["variables"] == {"value": str(guid_of(account)) if by_guid else account}


class ScimKit(Kit):
    """RFC 7644: GET /Users?filter=userName eq "…", then PATCH /Users/{id} replacing password."""

    type = "scim"
    operation = "patch"
    rejects = True

    def __init__(self, secrets: Path) -> None:
        super().__init__(secrets)
        self.token = service_secret("scimtoken")

    def fake(self, accounts: list[str]) -> FakeScim:
        return FakeScim(users=accounts, token=self.token)

    def add_user(self, fake: Any, account: str) -> None:
        fake.users[account] = str(uuid.uuid5(uuid.NAMESPACE_URL, account))

    def backend(self, *fakes: Any, **overrides: Any) -> dict[str, Any]:
        (fake,) = fakes
        config: dict[str, Any] = {
            "type": "scim",
            "url": fake.base_url,
            "token": write_secret(self.secrets, "scim.secret", self.token),
            "timeout": "2s",
            "retry": retry(),
        }
        config.update(overrides)
        return config

    def assert_request(
        self, fake: Any, account: str, pw: Pw, event_id: str, changed_at_ms: int | None
    ) -> None:
        assert not fake.invalid, [r.problem for r in fake.invalid]
        searches = [r for r in fake.received if r.operation == "search" and r.account == account]
        (search,) = searches
        assert search.method == "GET" and search.path == "/scim/v2/Users"
        assert parse_qs(urlsplit(search.raw_target).query) == {
            "filter": [f'userName eq "{account}"']
        }
        (patch,) = self.password_requests(fake, account)
        assert patch.method == "PATCH"
        assert patch.path == f"/scim/v2/Users/{fake.users[account]}"
        assert patch.headers["Content-Type"].split(";")[0] == "application/scim+json"
        assert sha256_hex(patch.headers["Authorization"]) == sha256_hex(f"Bearer {self.token}")
        body = json.loads(patch.body)
        (operation,) = body["Operations"]
        assert sha256_hex(operation.pop("value")) == pw.sha
        wanted = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "password"}]}
        assert body == wanted
        assert fake.passwords[fake.users[account]] == pw.sha


KITS: dict[str, type[Kit]] = {
    "soffid": SoffidKit,
    "oim_spml": OimKit,
    "domino": DominoKit,
    "scim": ScimKit,
}


@pytest.fixture(params=sorted(KITS))
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Kit:
    return KITS[request.param](tmp_path / "secrets")


@pytest.fixture
def kits(tmp_path: Path) -> dict[str, Kit]:
    return {name: cls(tmp_path / "secrets") for name, cls in KITS.items()}


# --- fakes ---------------------------------------------------------------------------------------


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[[FakeTarget], Awaitable[Any]]]:
    """Enter fakes for the test; all are stopped at the end (released first if stalled)."""
    entered: list[FakeTarget] = []

    async def enter(fake: FakeTarget) -> Any:
        await fake.__aenter__()
        entered.append(fake)
        return fake

    yield enter
    for fake in reversed(entered):
        await fake.__aexit__(None, None, None)


# --- the daemon ----------------------------------------------------------------------------------


@dataclass
class Rig:
    daemon: DaemonProcess
    work: Path
    outputs: list[bytes] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.daemon.config_path

    async def stop(self) -> None:
        """SIGTERM and wait (the fixture still checks the exit code and scans the log)."""
        await asyncio.to_thread(self.daemon.stop, 30)

    async def send(
        self,
        account: str,
        pw: Pw,
        *,
        object_guid: uuid.UUID | None = None,
        changed_at_ms: int | None = None,
    ) -> tuple[str, int]:
        """One CHANGE over the wire protocol; returns (event id hex, changed_at_ms)."""
        event_id = os.urandom(16)
        at = changed_at_ms if changed_at_ms is not None else int(time.time() * 1000)

        def go() -> int:
            with IngestClient.unix(self.daemon.unix_socket, timeout=10) as client:
                ack = client.change(
                    account=account,
                    password=Secret(pw.value),
                    changed_at_ms=at,
                    event_id=event_id,
                    domain="ADSYNC",
                    source_host="dc1",
                    object_guid=object_guid,
                )
            return int(ack.status)

        status = await asyncio.to_thread(go)
        assert status == 0, f"ACK {status}"
        return event_id.hex(), at

    async def send_many(self, items: list[tuple[str, Pw, uuid.UUID | None]]) -> None:
        """Many CHANGEs pipelined on one connection, as a filter's worker sends a backlog."""
        now = int(time.time() * 1000)
        messages = [
            change_message(
                account=account,
                password=Secret(pw.value),
                changed_at_ms=now,
                event_id=os.urandom(16),
                domain="ADSYNC",
                object_guid=guid,
            )
            for account, pw, guid in items
        ]

        def go() -> list[int]:
            with IngestClient.unix(self.daemon.unix_socket, timeout=30) as client:
                return [int(a.status) for a in client.pipeline_changes(messages)]

        assert set(await asyncio.to_thread(go)) == {0}

    async def check(self, account: str, pw: Pw) -> VerdictReply:
        def go() -> VerdictReply:
            with IngestClient.unix(self.daemon.unix_socket, timeout=10) as client:
                return client.check(account=account, password=Secret(pw.value), domain="ADSYNC")

        reply = await asyncio.to_thread(go)
        no_password_in(reply.reason, "the VERDICT reason")
        return reply

    async def cli(self, *args: str, stdin: bytes = b"") -> tuple[int, bytes]:
        """An ``adsync`` subcommand; its output is scanned for every registered password."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adsync",
            *args,
            "--config",
            str(self.config_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.work,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
        self.outputs.append(out)
        no_password_in(out, f"the output of adsync {' '.join(args)}")
        assert proc.returncode is not None
        return proc.returncode, out

    async def adsync_test(self, account: str, pw: Pw) -> str:
        """``adsync test ACCOUNT --password-stdin``; returns the event id it printed."""
        line_in = pw.value.encode() + b"\n"
        code, out = await self.cli("test", account, "--password-stdin", stdin=line_in)
        text = out.decode()
        assert code == 0, text
        prefix = "stored: event "
        line = next(x for x in text.splitlines() if x.startswith(prefix))
        return line[len(prefix) :].split()[0]

    async def rows(self, backend: str | None = None) -> list[DeliveryInfo]:
        """Delivery rows through the queue's operator API (beside the running daemon)."""
        queue = await Queue.open(
            self.daemon.config["queue"]["path"],
            FileKeyProvider(self.daemon.config["keys"]["path"]),
            list(self.daemon.config["backends"]),
            max_pending=1000,
            operator=True,
        )
        try:
            return await queue.list_deliveries(backend=backend, limit=10000)
        finally:
            await queue.close()

    async def row(self, backend: str, account: str) -> DeliveryInfo | None:
        found = [r for r in await self.rows(backend) if r.account == account]
        return found[0] if found else None

    async def wait_row(
        self,
        backend: str,
        account: str,
        predicate: Callable[[DeliveryInfo], bool],
        what: str,
        within: float = 30.0,
    ) -> DeliveryInfo:
        last: DeliveryInfo | None = None

        async def ok() -> bool:
            nonlocal last
            last = await self.row(backend, account)
            return last is not None and predicate(last)

        await eventually(ok, what, within, lambda: f"\nlast row: {last}\n{self.daemon.log_tail()}")
        assert last is not None
        return last

    async def queue_list(self, *accounts: str) -> str:
        """``adsync queue list`` (table and JSON): rows for ``accounts``, no password anywhere."""
        code, table = await self.cli("queue", "list")
        assert code == 0, table.decode(errors="replace")
        code, raw = await self.cli("queue", "list", "--json")
        assert code == 0, raw.decode(errors="replace")
        listed = {r["account"] for r in json.loads(raw)}
        assert set(accounts) <= listed, f"queue list lacks {set(accounts) - listed}"
        for account in accounts:
            assert account in table.decode()
        return table.decode()


async def eventually(
    predicate: Callable[[], Awaitable[bool]],
    what: str,
    within: float = 30.0,
    context: Callable[[], str] = lambda: "",
) -> None:
    """Poll (the fakes keep serving meanwhile); a generous bound, never a timing assertion."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}{context()}")


StartDaemon = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start ``adsync run`` with these backends (each call: its own work dir and queue)."""
    started: list[DaemonProcess] = []

    async def start(backends: dict[str, Any], **sections: Any) -> Rig:
        work = tmp_path / f"daemon{len(started)}"
        work.mkdir()
        sections.setdefault("dispatch", {"shutdown_grace": "500ms"})
        daemon = DaemonProcess(work, base_config(work, backends, **sections))
        started.append(daemon)
        await asyncio.to_thread(daemon.start)
        return Rig(daemon, work)

    yield start
    for daemon in started:
        try:
            await asyncio.to_thread(daemon.stop, 30)
        except Exception:
            daemon.kill()
        # The daemon must stop cleanly, and nothing it logged may hold a password.
        assert daemon.proc is not None and daemon.proc.returncode == 0, daemon.log_tail()
        no_password_in(daemon.log_path.read_bytes(), str(daemon.log_path))


@pytest.fixture(autouse=True)
def test_process_logs(tmp_path: Path) -> Iterator[None]:
    """Everything the fakes and clients log in this process (aiohttp server errors included)."""
    with capture_all_logs() as logs:
        yield
    path = REGISTRY.watch(tmp_path / "test-process.log")
    path.write_text(logs())
    no_password_in(path.read_bytes(), "the test process's logs (fakes, clients)")
