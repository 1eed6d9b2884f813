"""The plugin API: what a backend is, what it receives, and what it answers.

A backend is a class registered in the ``adsync.backends`` entry-point group.
It declares a pydantic config model (a subclass of ``BackendConfig``), delivers
one change at a time (``deliver``), may answer policy pre-checks (``check``),
and has a ``start``/``close`` life cycle. The reference plugins in
``adsync.backends`` (src/adsync/backends/) use nothing beyond this module.
"""

from __future__ import annotations

import abc
import enum
import ipaddress
import ssl
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from adsync.duration import Duration
from adsync.secret import Secret, SecretField, check_secret_ref, resolve_secret_ref, scrub
from adsync.verdict import Verdict

ENTRY_POINT_GROUP = "adsync.backends"


# --- config shared by every backend --------------------------------------------------------


SecretRef = Annotated[
    str,
    SecretField(),
    AfterValidator(check_secret_ref),
    WithJsonSchema({"type": "string", "pattern": "^(file|env):.+$"}),
]
"""A secret field in YAML: a reference, resolved with ``resolve_secret`` when needed."""


def resolve_secret(ref: str, base_dir: Path | None = None) -> Secret:
    """Read the secret a ``SecretRef`` points to (at start, not at config load)."""
    return resolve_secret_ref(ref, base_dir=base_dir)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BackoffConfig(StrictModel):
    initial: Duration = Field(default=5.0, gt=0)
    max: Duration = Field(default=600.0, gt=0)
    factor: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class RetryConfig(StrictModel):
    backoff: BackoffConfig = BackoffConfig()
    max_rejections: int = Field(default=5, ge=0)
    unknown_user_grace: Duration = Field(default=3600.0, ge=0)
    expire_after: Duration = Field(default=7 * 86400.0, gt=0)


class TLSConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True

    def client_context(self) -> ssl.SSLContext:
        """Verification on unless ``verify: false``; ``ca_file`` replaces the system store."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            key = str(self.key_file) if self.key_file is not None else None
            context.load_cert_chain(str(self.cert_file), key)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (brackets allowed)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(value: str) -> str:
    """``value`` as it may be shown in a message: scheme, host, port and path only.

    Userinfo, the query string and the fragment can hold credentials (``user:pw@``,
    ``?token=``); an error or a log line never repeats them.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(an unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "(not a URL)"


def check_target_url(value: str, *, allow_plain_http: bool = False) -> str:
    """An http(s) URL with a host and no credentials in it; passwords go over plain http
    only to loopback, unless the operator says ``allow_plain_http: true``.

    Messages never repeat the value: it may hold a password (``user:pw@``) or a token
    in its query string.
    """
    try:
        parts = urlsplit(value)
        credentials = parts.username is not None or parts.password is not None
    except ValueError:
        raise ValueError("is not an http(s) URL with a host") from None
    if credentials:
        raise ValueError(
            "must not hold credentials (user:password@): the URL ends up in logs and "
            "status; put them in the backend's secret fields (file:PATH or env:NAME)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http(s) URL with a host")
    if parts.scheme == "http" and not allow_plain_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{safe_url(value)}: passwords travel in this request; use https "
            "(plain http is allowed only to loopback hosts)"
        )
    return value


class BackendConfig(StrictModel):
    """Keys every backend has; a plugin's model subclasses this and adds its own."""

    type: str
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout: Duration = Field(default=10.0, gt=0)
    retry: RetryConfig = RetryConfig()


# --- what a backend receives ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One password change, as the source reported it. ``password`` never prints itself."""

    event_id: bytes
    account: str
    password: Secret
    changed_at_ms: int
    domain: str = ""
    source_host: str | None = None
    rid: int | None = None
    object_guid: uuid.UUID | None = None
    sequence: int | None = None

    @property
    def event_id_hex(self) -> str:
        return self.event_id.hex()

    @property
    def changed_at(self) -> datetime:
        return datetime.fromtimestamp(self.changed_at_ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A password about to be set (CHECK): the backend says whether its policy allows it."""

    account: str
    password: Secret
    domain: str = ""
    full_name: str = ""
    set_operation: bool = False  # True: an administrator's reset; False: the user's own change
    source_host: str | None = None


# --- what a backend answers -----------------------------------------------------------------


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    UNKNOWN_USER = "unknown_user"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A delivery's result. ``reason`` is shown to operators: it must not hold the password.

    ``misconfigured`` says the cause is on our side of the wire (credentials, URL, agent
    name, trust store, a protocol option): retrying will not help until an operator acts,
    so ``adsync status`` shows the backend as misconfigured. It does not change how the
    dispatcher retries (that follows ``kind``).
    """

    kind: OutcomeKind
    reason: str = ""
    retry_after: float | None = None  # seconds the target asked us to wait (Retry-After)
    misconfigured: bool = False

    @classmethod
    def delivered(cls, reason: str = "") -> Outcome:
        return cls(OutcomeKind.DELIVERED, reason)

    @classmethod
    def rejected(
        cls, reason: str, retry_after: float | None = None, *, misconfigured: bool = False
    ) -> Outcome:
        return cls(OutcomeKind.REJECTED, reason, retry_after, misconfigured)

    @classmethod
    def unreachable(
        cls, reason: str, retry_after: float | None = None, *, misconfigured: bool = False
    ) -> Outcome:
        return cls(OutcomeKind.UNREACHABLE, reason, retry_after, misconfigured)

    @classmethod
    def unknown_user(cls, reason: str = "no such account on the target") -> Outcome:
        return cls(OutcomeKind.UNKNOWN_USER, reason)

    @classmethod
    def failed(cls, reason: str, *, misconfigured: bool = False) -> Outcome:
        return cls(OutcomeKind.FAILED, reason, None, misconfigured)

    @classmethod
    def configuration(cls, reason: str) -> Outcome:
        """Failed at once, and the backend shows as misconfigured."""
        return cls(OutcomeKind.FAILED, reason, None, True)


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    reason: str = ""

    @classmethod
    def accept(cls, reason: str = "") -> CheckResult:
        return cls(Verdict.ACCEPT, reason)

    @classmethod
    def reject(cls, reason: str) -> CheckResult:
        return cls(Verdict.REJECT, reason)

    @classmethod
    def undecided(cls, reason: str = "") -> CheckResult:
        return cls(Verdict.UNDECIDED, reason)


# --- the time a policy check has -----------------------------------------------------------

_check_deadline: ContextVar[float | None] = ContextVar("adsync_check_deadline", default=None)


def check_time_left() -> float | None:
    """Seconds left (``time.monotonic`` based) before the running pre-check is cut off.

    None outside a pre-check. A plugin that tries several servers in ``check``
    divides this among them, so that a hanging first server leaves the next one
    time to answer before ``precheck.timeout``.
    """
    deadline = _check_deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def set_check_deadline(seconds: float) -> object:
    """Used by the daemon's pre-check; returns a token for ``reset_check_deadline``."""
    return _check_deadline.set(time.monotonic() + seconds)


def reset_check_deadline(token: object) -> None:
    _check_deadline.reset(token)  # type: ignore[arg-type]


# --- the backend base -----------------------------------------------------------------------

ConfigT = TypeVar("ConfigT", bound=BackendConfig)


class Backend(abc.ABC, Generic[ConfigT]):
    """Base of every plugin.

    ``deliver`` is called by the dispatcher with the backend's ``timeout`` applied
    from outside (cancellation means unreachable), at most ``concurrency`` at once,
    and never twice at once for the same account. It must return an ``Outcome``
    rather than raise; an exception that escapes is recorded as ``failed`` with
    the exception's type only.
    """

    config_model: ClassVar[type[BackendConfig]] = BackendConfig

    def __init__(self, name: str, config: ConfigT) -> None:
        self.name = name
        self.config = config

    async def start(self) -> None:
        """Open sessions, read secrets. Must not require the target to be up."""

    @abc.abstractmethod
    async def deliver(self, change: Change) -> Outcome:
        """Send one change to the target and classify the answer."""

    async def check(self, candidate: Candidate) -> CheckResult:
        """Policy pre-check; only called when ``offers_check`` is true."""
        raise NotImplementedError

    @property
    def offers_check(self) -> bool:
        return type(self).check is not Backend.check

    async def close(self) -> None:
        """Release sessions; called once at shutdown."""


# --- discovery ------------------------------------------------------------------------------


class UnknownBackendType(LookupError):
    """No installed plugin provides the configured ``type``."""

    def __init__(self, type_name: str, available: list[str]) -> None:
        self.type_name = type_name
        self.available = available
        names = ", ".join(available) or "none"
        super().__init__(f"no installed plugin provides type {type_name!r} (installed: {names})")


def available_backend_types() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def builtin_backend_types() -> list[str]:
    """The types adsync itself ships (its own distribution's entry points), whatever
    third-party plugins are installed beside it."""
    return sorted(
        ep.name
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name == "adsync"
    )


def load_backend_class(type_name: str) -> type[Backend[Any]]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == type_name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise TypeError(f"entry point {type_name!r} does not name a Backend subclass")
            return cls
    raise UnknownBackendType(type_name, available_backend_types())


__all__ = [
    "Backend",
    "BackendConfig",
    "BackoffConfig",
    "Candidate",
    "Change",
    "CheckResult",
    "Duration",
    "Outcome",
    "OutcomeKind",
    "RetryConfig",
    "Secret",
    "SecretRef",
    "StrictModel",
    "TLSConfig",
    "UnknownBackendType",
    "Verdict",
    "available_backend_types",
    "builtin_backend_types",
    "check_target_url",
    "check_time_left",
    "is_loopback_host",
    "load_backend_class",
    "resolve_secret",
    "safe_url",
    "scrub",
]
