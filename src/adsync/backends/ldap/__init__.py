"""LDAP directory backend: find the account's entry, set its password.

The client is bonsai (asyncio-native, wraps OpenLDAP's libldap, so TLS and the
RFC 3062 Password Modify operation behave as ``ldappasswd`` does). It is the ``ldap``
extra (a C extension a DC without a compiler may lack): a config naming this backend
without it is refused at load with one line naming the extra. One connection
per delivery: a bind is cheap next to a password change, and nothing stale is kept
between deliveries that may be hours apart.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from adsync.backends.ldap.filters import build_filter, check_filter_template
from adsync.backends.ldap.outcomes import Phase, classify
from adsync.extras import MissingExtra, require
from adsync.plugin import (
    Backend,
    BackendConfig,
    Change,
    Outcome,
    Secret,
    SecretRef,
    TLSConfig,
    resolve_secret,
    scrub,
)


class LdapConfig(BackendConfig):
    type: str = "ldap"
    url: str = Field(description="ldaps://host[:port], or ldap://host[:port] with starttls: true")
    starttls: bool = False
    bind_dn: str
    bind_password: SecretRef
    base_dn: str
    filter: str = "(uid={account})"
    search_scope: Literal["one", "sub"] = "sub"
    password_method: Literal["password_modify", "replace"] = "password_modify"  # noqa: S105
    password_attribute: str = "userPassword"  # noqa: S105
    tls: TLSConfig = TLSConfig()

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("ldap", "ldaps") or not rest.strip("/"):
            raise ValueError("must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]")
        if "@" in rest.partition("/")[0]:  # never repeated: it would be a password
            raise ValueError(
                "must not hold credentials (user:password@); use bind_dn and bind_password"
            )
        return value

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: str) -> str:
        return check_filter_template(value)

    @model_validator(mode="before")
    @classmethod
    def _check_extra(cls, data: Any) -> Any:
        try:  # at config load, so check-config and run both say it in one line
            require("ldap", "the ldap backend")
        except MissingExtra as exc:
            raise ValueError(str(exc)) from None
        return data

    @model_validator(mode="after")
    def _check_transport(self) -> LdapConfig:
        scheme = self.url.partition("://")[0].lower()
        if scheme == "ldap" and not self.starttls:
            raise ValueError("ldap:// without starttls would send passwords in clear")
        if scheme == "ldaps" and self.starttls:
            raise ValueError("starttls applies to ldap:// only; ldaps:// is already TLS")
        return self


def _connection_class() -> type[Any]:
    from bonsai.asyncio import AIOLDAPConnection
    from bonsai.errors import LDAPError

    class StampingConnection(AIOLDAPConnection):
        """Records each error's result code on the exception itself.

        bonsai reports generic result codes through a class attribute
        (``LDAPError.code``) that the next error overwrites; with concurrent
        deliveries on one loop that would misclassify. The stamp is taken in the
        same callback that created the exception, before anything else runs.
        """

        def _ready(self, msg_id: int, fut: asyncio.Future[Any]) -> None:
            super()._ready(msg_id, fut)  # type: ignore[no-untyped-call]
            if fut.done() and not fut.cancelled():
                exc = fut.exception()
                if isinstance(exc, LDAPError):
                    exc.result_code = type(exc).code  # type: ignore[attr-defined]

    return StampingConnection


class LdapBackend(Backend[LdapConfig]):
    config_model = LdapConfig

    def __init__(self, name: str, config: LdapConfig) -> None:
        super().__init__(name, config)
        self._bind_password: Secret | None = None
        self._client: Any = None

    async def start(self) -> None:
        import bonsai

        self._bind_password = resolve_secret(self.config.bind_password)
        client = bonsai.LDAPClient(self.config.url, tls=self.config.starttls)
        tls = self.config.tls
        client.set_cert_policy("demand" if tls.verify else "never")
        if tls.ca_file is not None:
            client.set_ca_cert(str(tls.ca_file))
        if tls.cert_file is not None:
            client.set_client_cert(str(tls.cert_file))
        if tls.key_file is not None:
            client.set_client_key(str(tls.key_file))
        client.set_credentials(
            "SIMPLE", user=self.config.bind_dn, password=self._bind_password.reveal()
        )
        client.set_async_connection_class(_connection_class())
        self._client = client

    async def deliver(self, change: Change) -> Outcome:
        if self._client is None:
            return Outcome.failed("backend not started")
        from bonsai.errors import LDAPError

        phase = Phase.BIND
        conn: Any = None
        try:
            conn = await self._client.connect(is_async=True, timeout=self.config.timeout)
            phase = Phase.SEARCH
            dn = await self._find(conn, change)
            if isinstance(dn, Outcome):
                return dn
            phase = Phase.MODIFY
            await self._set_password(conn, dn, change.password)
            return Outcome.delivered(f"password set on {dn}")
        except LDAPError as exc:
            return _ldap_outcome(exc, phase, change.password, self._bind_password)
        except (TimeoutError, OSError) as exc:
            return Outcome.unreachable(f"LDAP {phase.value}: {type(exc).__name__}")
        finally:
            if conn is not None:
                conn.close()

    async def probe(self) -> Outcome:
        """``adsync doctor``'s check, no password changed: bind as ``bind_dn`` and read
        ``base_dn``. ``delivered`` means the URL, TLS, the bind and the base are right."""
        if self._client is None:
            return Outcome.failed("backend not started")
        import bonsai
        from bonsai.errors import LDAPError

        phase = Phase.BIND
        conn: Any = None
        try:
            conn = await self._client.connect(is_async=True, timeout=self.config.timeout)
            phase = Phase.SEARCH
            base = await conn.search(
                self.config.base_dn,
                bonsai.LDAPSearchScope.BASE,
                attrlist=["1.1"],
                timeout=self.config.timeout,
            )
        except LDAPError as exc:
            return _ldap_outcome(exc, phase, self._bind_password)
        except (TimeoutError, OSError) as exc:
            return Outcome.unreachable(f"LDAP {phase.value}: {type(exc).__name__}")
        finally:
            if conn is not None:
                conn.close()
        if not base:
            return Outcome.configuration(f"base_dn {self.config.base_dn} does not exist")
        return Outcome.delivered(f"bind as {self.config.bind_dn} ok; base_dn exists")

    async def _find(self, conn: Any, change: Change) -> str | Outcome:
        import bonsai

        scope = (
            bonsai.LDAPSearchScope.SUB
            if self.config.search_scope == "sub"
            else bonsai.LDAPSearchScope.ONELEVEL
        )
        query = build_filter(self.config.filter, change.account, change.domain)
        entries = await conn.search(
            self.config.base_dn, scope, query, attrlist=["1.1"], timeout=self.config.timeout
        )
        if not entries:
            # bonsai answers a missing base with an empty list, not noSuchObject: tell the
            # operator's typo (failed) from an account the target lacks (unknown_user).
            base = await conn.search(
                self.config.base_dn,
                bonsai.LDAPSearchScope.BASE,
                attrlist=["1.1"],
                timeout=self.config.timeout,
            )
            if not base:
                return Outcome.failed(f"base_dn {self.config.base_dn} does not exist")
            return Outcome.unknown_user(f"no entry matches the filter under {self.config.base_dn}")
        if len(entries) > 1:
            return Outcome.failed(
                f"the filter matched {len(entries)} entries; it must match exactly one"
            )
        return str(entries[0].dn)

    async def _set_password(self, conn: Any, dn: str, password: Secret) -> None:
        if self.config.password_method == "password_modify":  # noqa: S105
            await conn.modify_password(dn, password.reveal(), timeout=self.config.timeout)
            return
        import bonsai

        entries = await conn.search(
            dn, bonsai.LDAPSearchScope.BASE, attrlist=["1.1"], timeout=self.config.timeout
        )
        if not entries:
            raise bonsai.errors.NoSuchObjectError("entry vanished")
        entry = entries[0]
        entry.change_attribute(
            self.config.password_attribute, bonsai.LDAPModOp.REPLACE, password.reveal()
        )
        await entry.modify(timeout=self.config.timeout)

    async def close(self) -> None:
        self._client = None


def _ldap_outcome(exc: Any, phase: Phase, *secrets: Secret | None) -> Outcome:
    """The outcome of an LDAP error in ``phase``. A server diagnostic may echo what it was
    sent: it is scrubbed of ``secrets`` before it becomes a reason."""
    code = int(getattr(exc, "result_code", type(exc).code))
    diagnostic = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    outcome: Outcome = classify(code, scrub(str(diagnostic), *secrets), phase)
    return outcome


__all__ = ["LdapBackend", "LdapConfig"]
