"""One LDAP connection to the local DC: account facts, cached per account and batched.

bonsai (asyncio, libldap) is imported lazily, so a daemon without ``directory:``
never needs it. Lookups that arrive within ``batch_window`` share one search for
the accounts and one in-chain search per rule group
(``memberOf:1.2.840.113556.1.4.1941:=GROUP``, LDAP_MATCHING_RULE_IN_CHAIN, which
AD and Samba both evaluate, authenticated sessions only on Samba). Answers are
kept ``cache_ttl`` seconds per account. Errors never carry an attribute value.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from adsync.clock import Clock, SystemClock
from adsync.config import DirectoryConfig
from adsync.directory.metadata import (
    MetadataError,
    PasswordVersion,
    from_pwd_last_set,
    parse_repl_attribute_metadata,
    parse_repl_property_metadata,
)
from adsync.directory.scope import AccountFacts, group_key, is_dn
from adsync.plugin import Secret, resolve_secret

log = structlog.get_logger("adsync.directory")

IN_CHAIN = "1.2.840.113556.1.4.1941"
ACCOUNT_ATTRS = [
    "sAMAccountName",
    "replPropertyMetaData",
    "msDS-ReplAttributeMetaData",
    "pwdLastSet",
]


class DirectoryError(Exception):
    """The directory did not answer, or answered something unusable; safe to show."""


def _bonsai() -> Any:
    """bonsai, imported on first use; the config refuses ``directory:`` without the ldap
    extra (``DirectoryConfig``), so this import does not fail in a running daemon."""
    import bonsai

    return bonsai


def escape_filter(value: str) -> str:
    """RFC 4515 value escaping."""
    out = []
    for ch in value:
        if ch in "*()\\\x00":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def libldap_url(url: str) -> str:
    """``ldapi:///path`` (as written in the config) → libldap's percent-encoded host."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "ldapi" or rest.startswith("%2"):
        return url
    return "ldapi://" + urllib.parse.quote("/" + rest.lstrip("/"), safe="")


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One account as the directory answered, at ``fetched_at``."""

    account: str
    facts: AccountFacts | None  # None: no such account
    version: PasswordVersion | None
    asked_groups: frozenset[str]
    fetched_at: float


@dataclass
class DirectoryStats:
    """What status and metrics show."""

    lookups: int = 0
    searches: int = 0
    cache_hits: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_ok_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def version_of(entry: Any) -> PasswordVersion | None:
    """The password version in one entry: metadata if readable, else pwdLastSet."""
    try:
        xml = entry.get("msDS-ReplAttributeMetaData")
        if xml:
            found = parse_repl_attribute_metadata(xml)
            if found is not None:
                return found
        blob = entry.get("replPropertyMetaData")
        if blob:
            raw = blob[0]
            found = parse_repl_property_metadata(raw if isinstance(raw, bytes) else bytes(raw))
            if found is not None:
                return found
    except MetadataError as exc:
        log.warning("directory_metadata_unreadable", reason=str(exc))
    pls = entry.get("pwdLastSet")
    if pls:
        return from_pwd_last_set(int(pls[0]))
    return None


class DirectoryClient:
    """The daemon's one directory connection (opened on first use, reopened after errors)."""

    def __init__(self, config: DirectoryConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.stats = DirectoryStats()
        self._conn: Any = None
        self._connecting: asyncio.Lock | None = None
        self._password: Secret | None = None
        self._base: str | None = config.base_dn
        self._invocation_id: uuid.UUID | None = None
        self._cache: dict[str, AccountRecord] = {}
        self._group_dns: dict[str, str] = {}  # group_key → DN
        self._waiting: dict[str, list[tuple[frozenset[str], asyncio.Future[AccountRecord]]]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # bonsai's asyncio connection registers one reader per socket: a second operation
        # in flight replaces the first one's wake-up. One operation at a time (batching
        # keeps that cheap).
        self._io: asyncio.Lock | None = None

    def _io_lock(self) -> asyncio.Lock:
        if self._io is None:
            self._io = asyncio.Lock()
        return self._io

    # --- connection --------------------------------------------------------------------

    async def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None:
                self._conn = await self._connect()
        return self._conn

    async def _connect(self) -> Any:
        bonsai = _bonsai()
        cfg = self.config
        scheme = cfg.url.partition("://")[0].lower()
        client = bonsai.LDAPClient(libldap_url(cfg.url))
        if scheme == "ldaps":
            client.set_cert_policy("demand" if cfg.tls.verify else "never")
            if cfg.tls.ca_file is not None:
                client.set_ca_cert(str(cfg.tls.ca_file))
        if cfg.auth == "simple":
            assert cfg.bind_dn is not None and cfg.bind_password is not None
            if self._password is None:
                self._password = resolve_secret(cfg.bind_password)
            client.set_credentials("SIMPLE", user=cfg.bind_dn, password=self._password.reveal())
        elif cfg.auth == "external":
            client.set_credentials("EXTERNAL")
        elif cfg.auth == "negotiate":
            client.set_credentials("GSS-SPNEGO")
        try:
            conn = await client.connect(is_async=True, timeout=cfg.budget)
            if self._base is None or self._invocation_id is None:
                root = await conn.search(
                    "",
                    bonsai.LDAPSearchScope.BASE,
                    attrlist=["defaultNamingContext", "dsServiceName"],
                    timeout=cfg.budget,
                )
                if not root:
                    raise DirectoryError("the rootDSE did not answer")
                if self._base is None:
                    self._base = str(root[0]["defaultNamingContext"][0])
                self._invocation_id = await self._read_invocation_id(conn, root[0], bonsai)
        except bonsai.errors.LDAPError as exc:
            raise DirectoryError(f"cannot connect: {_ldap_reason(exc)}") from None
        except (TimeoutError, OSError) as exc:
            raise DirectoryError(f"cannot connect: {type(exc).__name__}") from None
        return conn

    async def _read_invocation_id(self, conn: Any, root: Any, bonsai: Any) -> uuid.UUID | None:
        names = root.get("dsServiceName") or []
        if not names:
            return None
        entries = await conn.search(
            str(names[0]), bonsai.LDAPSearchScope.BASE, attrlist=["invocationId"],
            timeout=self.config.budget,
        )  # fmt: skip
        if not entries or not entries[0].get("invocationId"):
            return None
        raw = entries[0]["invocationId"][0]
        return uuid.UUID(bytes_le=raw) if isinstance(raw, bytes) else uuid.UUID(str(raw))

    async def invocation_id(self) -> uuid.UUID | None:
        """This DC's DSA invocation id (which DC made a change), or None if unreadable."""
        await self._connection()
        return self._invocation_id

    async def base_dn(self) -> str:
        await self._connection()
        assert self._base is not None
        return self._base

    def _drop(self, reason: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = reason
        self.stats.last_error_at = self.clock.time()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    # --- lookups -----------------------------------------------------------------------

    def forget(self, account: str) -> None:
        """A change was captured for ``account``: its cached version is old now."""
        self._cache.pop(account.casefold(), None)

    async def lookup(
        self, account: str, groups: Iterable[str] = (), *, fresh: bool = False
    ) -> AccountRecord:
        """The account's facts and password version; raises ``DirectoryError``."""
        self.stats.lookups += 1
        wanted = frozenset(groups)
        key = account.casefold()
        hit = self._cache.get(key)
        now = self.clock.time()
        if (
            not fresh
            and hit is not None
            and now - hit.fetched_at < self.config.cache_ttl
            and wanted <= hit.asked_groups
        ):
            self.stats.cache_hits += 1
            return hit
        fut: asyncio.Future[AccountRecord] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account, []).append((wanted, fut))
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                self.config.batch_window, self._start_flush
            )
        return await asyncio.shield(fut)

    def _start_flush(self) -> None:
        self._flush = None
        batch, self._waiting = self._waiting, {}
        task = asyncio.ensure_future(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(
        self, batch: dict[str, list[tuple[frozenset[str], asyncio.Future[AccountRecord]]]]
    ) -> None:
        groups = frozenset(g for waits in batch.values() for wanted, _ in waits for g in wanted)
        try:
            records = await self._fetch(list(batch), groups)
        except DirectoryError as exc:
            self._drop(str(exc))
            log.warning("directory_unavailable", reason=str(exc))
            for waits in batch.values():
                for _, fut in waits:
                    if not fut.done():
                        fut.set_exception(DirectoryError(str(exc)))
                        fut.add_done_callback(_retrieved)  # its waiter may have given up
            return
        self.stats.last_ok_at = self.clock.time()
        for account, waits in batch.items():
            record = records[account.casefold()]
            self._cache[account.casefold()] = self._merged(record)
            for _, fut in waits:
                if not fut.done():
                    fut.set_result(record)

    def _merged(self, record: AccountRecord) -> AccountRecord:
        """Keep the cached answers for groups this fetch did not ask about (a capture's
        lookup asks none), so the delivery that follows needs no second search. The merged
        entry expires with its older part."""
        prev = self._cache.get(record.account.casefold())
        if (
            prev is None
            or prev.facts is None
            or record.facts is None
            or prev.facts.dn != record.facts.dn
            or record.fetched_at - prev.fetched_at >= self.config.cache_ttl
        ):
            return record
        extra = prev.asked_groups - record.asked_groups
        if not extra:
            return record
        keys = {group_key(g) for g in extra}
        kept = frozenset(k for k in prev.facts.groups if k in keys)
        return replace(
            record,
            facts=AccountFacts(record.facts.dn, record.facts.groups | kept),
            asked_groups=record.asked_groups | extra,
            fetched_at=prev.fetched_at,
        )

    async def _fetch(
        self, accounts: Sequence[str], groups: frozenset[str]
    ) -> dict[str, AccountRecord]:
        async with self._io_lock():
            started = self.clock.time()
            try:
                return await self._fetch_locked(accounts, groups)
            finally:
                log.debug(
                    "directory_batch",
                    accounts=len(accounts),
                    groups=len(groups),
                    seconds=round(self.clock.time() - started, 4),
                )

    async def _fetch_locked(
        self, accounts: Sequence[str], groups: frozenset[str]
    ) -> dict[str, AccountRecord]:
        bonsai = _bonsai()
        conn = await self._connection()
        budget = self.config.budget
        either = "".join(f"(sAMAccountName={escape_filter(a)})" for a in accounts)
        who = f"(|{either})" if len(accounts) > 1 else either
        try:
            base = await self.base_dn()
            entries = await conn.search(
                base, bonsai.LDAPSearchScope.SUB, f"(&(objectClass=user){who})",
                attrlist=ACCOUNT_ATTRS, timeout=budget,
            )  # fmt: skip
            self.stats.searches += 1
            found: dict[str, Any] = {}
            for entry in entries:
                name = entry.get("sAMAccountName")
                if name:
                    found[str(name[0]).casefold()] = entry
            members: dict[str, set[str]] = {k: set() for k in found}
            for group in sorted(groups):
                dn = await self._group_dn(conn, group, bonsai)
                hits = await conn.search(
                    base, bonsai.LDAPSearchScope.SUB,
                    f"(&(objectClass=user){who}(memberOf:{IN_CHAIN}:={escape_filter(dn)}))",
                    attrlist=["sAMAccountName"], timeout=budget,
                )  # fmt: skip
                self.stats.searches += 1
                for entry in hits:
                    name = entry.get("sAMAccountName")
                    if name and str(name[0]).casefold() in members:
                        members[str(name[0]).casefold()].add(group_key(group))
        except bonsai.errors.LDAPError as exc:
            raise DirectoryError(f"search failed: {_ldap_reason(exc)}") from None
        except (TimeoutError, OSError) as exc:
            raise DirectoryError(f"search failed: {type(exc).__name__}") from None
        now = self.clock.time()
        out = {}
        for account in accounts:
            key = account.casefold()
            entry = found.get(key)
            facts = None if entry is None else AccountFacts(str(entry.dn), frozenset(members[key]))
            version = None if entry is None else version_of(entry)
            out[key] = AccountRecord(account, facts, version, groups, now)
        return out

    async def _group_dn(self, conn: Any, group: str, bonsai: Any) -> str:
        """A configured group's DN (a name is looked up once); a missing group is an error."""
        key = group_key(group)
        known = self._group_dns.get(key)
        if known is not None:
            return known
        if is_dn(group):
            query, base, scope = "(objectClass=group)", group, bonsai.LDAPSearchScope.BASE
        else:
            query = f"(&(objectClass=group)(sAMAccountName={escape_filter(group)}))"
            base, scope = await self.base_dn(), bonsai.LDAPSearchScope.SUB
        try:
            entries = await conn.search(
                base, scope, query, attrlist=["1.1"], timeout=self.config.budget
            )
        except bonsai.errors.NoSuchObjectError:
            entries = []
        self.stats.searches += 1
        if len(entries) != 1:
            raise DirectoryError(f"scope group {group} not found in the directory")
        self._group_dns[key] = str(entries[0].dn)
        return self._group_dns[key]

    async def changed_since(self, since_filetime: int) -> list[tuple[str, PasswordVersion | None]]:
        """Accounts whose pwdLastSet is at or after ``since_filetime`` (for the audit)."""
        bonsai = _bonsai()
        conn = await self._connection()
        try:
            async with self._io_lock():
                entries = await conn.search(
                    await self.base_dn(), bonsai.LDAPSearchScope.SUB,
                    f"(&(objectClass=user)(pwdLastSet>={since_filetime}))",
                    attrlist=ACCOUNT_ATTRS, timeout=max(self.config.budget, 30.0),
                )  # fmt: skip
        except bonsai.errors.LDAPError as exc:
            self._drop(f"search failed: {_ldap_reason(exc)}")
            raise DirectoryError(f"search failed: {_ldap_reason(exc)}") from None
        return [
            (str(e["sAMAccountName"][0]), version_of(e)) for e in entries if e.get("sAMAccountName")
        ]


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _ldap_reason(exc: Exception) -> str:
    """The error's class and code, never its diagnostic text (it may echo a filter value)."""
    code = getattr(type(exc), "code", None)
    return f"{type(exc).__name__}" + (f" ({code})" if code is not None else "")


__all__ = [
    "AccountRecord",
    "DirectoryClient",
    "DirectoryError",
    "DirectoryStats",
    "escape_filter",
    "libldap_url",
]
