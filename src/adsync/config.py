"""The configuration file: pydantic models for every key, and a loader whose errors say
``FILE:LINE: key.path: message``.

Backend entries are validated by the config model of the plugin their ``type`` names
(entry points), so a third-party plugin's keys are checked as strictly as ours.
Secret fields stay references (``file:``/``env:``): ``check-config`` validates a file
on a machine that does not hold the secrets. Relative paths, also inside ``file:``
references, resolve against the config file's directory.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from adsync import plugin
from adsync.duration import Duration
from adsync.plugin import (
    BackendConfig,
    StrictModel,
    UnknownBackendType,
    available_backend_types,
    is_loopback_host,
    load_backend_class,
)
from adsync.yaml_source import KeyPath, YamlDocument, YamlSyntaxError, parse_yaml

DEFAULT_CONFIG_PATH = Path("/etc/adsync/adsync.yaml")
CONFIG_ENV = "ADSYNC_CONFIG"


def default_config_path() -> Path:
    """``$ADSYNC_CONFIG`` if set, else /etc/adsync/adsync.yaml (Windows: under %ProgramData%)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if os.name == "nt":
        return Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "adsync" / "adsync.yaml"
    return DEFAULT_CONFIG_PATH


# --- loopback addresses ---------------------------------------------------------------------

_LOOPBACK_HELP = "must be a loopback address HOST:PORT (127.0.0.0/8, [::1] or localhost)"
LOOPBACK_REGEX = (
    r"^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|\[0*:0*:0*:0*:0*:0*:0*:0*1\]):\d{1,5}$"
)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A loopback ``host:port`` to listen on; ``host`` has no brackets (ready for bind)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen_address(value: object) -> ListenAddress:
    if isinstance(value, ListenAddress):
        return value
    if not isinstance(value, str):
        raise ValueError(_LOOPBACK_HELP)
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:  # an unbracketed IPv6 address
            raise ValueError("write an IPv6 address in brackets, e.g. [::1]:9617")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(_LOOPBACK_HELP)
    port = int(port_text)
    if port > 65535:
        raise ValueError("the port must be between 0 and 65535")
    if not is_loopback_host(host):
        raise ValueError(f"{_LOOPBACK_HELP}; other addresses are refused")
    return ListenAddress(host.lower() if host.lower() == "localhost" else host, port)


LoopbackAddress = Annotated[
    ListenAddress,
    BeforeValidator(parse_listen_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": LOOPBACK_REGEX}),
]

_NAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
BackendName = Annotated[str, Field(pattern=_NAME_REGEX)]


# --- sections -------------------------------------------------------------------------------


class IngestConfig(StrictModel):
    """Where sources (the filter DLL, the Samba hook, ``adsync test``) reach the daemon."""

    unix_socket: Path | None = Path("/run/adsync/filter.sock")
    socket_group: str | None = Field(default=None, min_length=1)
    allowed_uids: tuple[Annotated[int, Field(ge=0)], ...] = (0,)
    tcp: LoopbackAddress | None = Field(default="127.0.0.1:17635", validate_default=True)
    psk_file: Path = Path("/etc/adsync/filter.key")
    max_connections: int = Field(default=64, ge=1, le=65536)
    frame_timeout: Duration = Field(default=10.0, gt=0)
    idle_timeout: Duration = Field(default=300.0, gt=0)
    handshake_timeout: Duration = Field(default=5.0, gt=0)
    max_frame: int = Field(default=65536, ge=16, le=65536)
    max_field: int = Field(default=1024, ge=1, le=65536)
    max_password: int = Field(default=1024, ge=1, le=65536)

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """``(host, port)`` to bind, or None when TCP ingest is off."""
        return None if self.tcp is None else (self.tcp.host, self.tcp.port)

    @model_validator(mode="after")
    def _some_transport(self) -> IngestConfig:
        if self.unix_socket is None and self.tcp is None:
            raise ValueError("unix_socket and tcp are both null: no source could reach adsync")
        return self


class QueueConfig(StrictModel):
    path: Path = Path("/var/lib/adsync/queue.db")
    max_pending: int = Field(default=1_000_000, ge=1)


class KeysConfig(StrictModel):
    provider: Literal["file", "dpapi", "env"] = Field(
        default_factory=lambda: "dpapi" if os.name == "nt" else "file"
    )
    path: Path = Path("/etc/adsync/master.key")
    env: str = Field(default="ADSYNC_MASTER_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class PrecheckConfig(StrictModel):
    backends: tuple[BackendName, ...] = ()
    timeout: Duration = Field(default=1.5, gt=0)
    on_undecided: Literal["accept", "reject"] = "accept"


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class MetricsConfig(StrictModel):
    listen: LoopbackAddress | None = Field(default="127.0.0.1:9617", validate_default=True)

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """``(host, port)`` to bind, or None when metrics are off."""
        return None if self.listen is None else (self.listen.host, self.listen.port)


class DispatchConfig(StrictModel):
    shutdown_grace: Duration = Field(default=30.0, ge=0)


class SambaConfig(StrictModel):
    initial_dump: Literal["skip", "forward"] = "skip"
    check_deadline: Duration = Field(default=8.0, gt=0, lt=10.0)


class DirectoryConfig(StrictModel):
    """The local DC's own directory (group/OU scope, the stale-password guard, the audit)."""

    url: str = Field(
        description="ldapi:///PATH (Samba: PRIVATE_DIR/ldap_priv/ldapi), ldap://127.0.0.1 "
        "or ldaps://127.0.0.1 (loopback only)"
    )
    auth: Literal["simple", "external", "negotiate", "none"] = Field(
        default="simple",
        description="simple: bind_dn + bind_password; external: SASL EXTERNAL; "
        "negotiate: the machine account (Windows); none: anonymous",
    )
    bind_dn: str | None = None
    bind_password: plugin.SecretRef | None = None
    base_dn: str | None = Field(default=None, description="default: the defaultNamingContext")
    cache_ttl: Duration = Field(default=5.0, ge=0, description="how long an answer is reused")
    budget: Duration = Field(
        default=2.0, gt=0, description="the longest a delivery waits for the directory"
    )
    batch_window: Duration = Field(default=0.005, ge=0, le=1.0)
    tls: plugin.TLSConfig = plugin.TLSConfig()

    @field_validator("url")
    @classmethod
    def _local_only(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("ldapi", "ldap", "ldaps"):
            raise ValueError("must be ldapi:///PATH, ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
        if scheme == "ldapi":
            if not rest.strip("/"):
                raise ValueError("ldapi:// needs the socket's path, e.g. ldapi:///run/x/ldapi")
            return value
        host = rest.split("/", 1)[0]
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not is_loopback_host(host):
            raise ValueError("the directory is the local DC: a loopback host or ldapi:// only")
        return value

    @model_validator(mode="after")
    def _auth_keys(self) -> DirectoryConfig:
        if self.auth == "simple" and (self.bind_dn is None or self.bind_password is None):
            raise ValueError("auth: simple needs bind_dn and bind_password")
        if self.auth != "simple" and (self.bind_dn or self.bind_password):
            raise ValueError(f"auth: {self.auth} takes no bind_dn or bind_password")
        return self


# --- backends -------------------------------------------------------------------------------


def _problems_text(exc: ValidationError) -> str:
    """A ValidationError summarized without the input values (they may be secrets)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def backend_config_from_data(name: str, data: object) -> BackendConfig:
    """Validate one ``backends`` entry with the model of the plugin its ``type`` names."""
    if isinstance(data, BackendConfig):
        return data
    if not isinstance(data, Mapping):
        raise ValueError("a backend is a mapping with at least a 'type' key")
    type_name = data.get("type")
    if not isinstance(type_name, str):
        raise ValueError("'type' (the plugin's name) is missing")
    model = load_backend_class(type_name).config_model
    return model.model_validate(dict(data))


def _backends_before(value: object) -> object:
    """For ``Config.model_validate`` on plain data; ``load_config`` gives precise errors."""
    if not isinstance(value, Mapping):
        return value
    out: dict[object, object] = {}
    for name, entry in value.items():
        try:
            out[name] = backend_config_from_data(str(name), entry)
        except ValidationError as exc:
            raise ValueError(f"backend {name}: {_problems_text(exc)}") from None
        except (LookupError, ImportError, TypeError) as exc:
            raise ValueError(f"backend {name}: {exc}") from None
    return out


class Config(StrictModel):
    """The whole file. Unset sections take their defaults."""

    ingest: IngestConfig = IngestConfig()
    queue: QueueConfig = QueueConfig()
    keys: KeysConfig = KeysConfig()
    precheck: PrecheckConfig = PrecheckConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    dispatch: DispatchConfig = DispatchConfig()
    samba: SambaConfig = SambaConfig()
    directory: DirectoryConfig | None = None
    backends: Annotated[dict[BackendName, BackendConfig], BeforeValidator(_backends_before)] = (
        Field(default_factory=dict)
    )

    @field_validator("backends", mode="after")
    @classmethod
    def _plugin_models(cls, value: dict[str, BackendConfig]) -> dict[str, BackendConfig]:
        for name, entry in value.items():
            if type(entry) is BackendConfig:
                raise ValueError(f"backend {name}: needs its plugin's config model")
        return value

    @model_validator(mode="after")
    def _precheck_names(self, info: ValidationInfo) -> Config:
        if isinstance(info.context, Mapping) and info.context.get("names_checked"):
            return self  # load_config checked them, pointing at the list items
        configured = set(self.backends)
        unknown = [n for n in self.precheck.backends if n not in configured]
        if unknown:
            raise ValueError(f"precheck.backends names no configured backend: {', '.join(unknown)}")
        return self


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ValueError):
    """Every problem found in a config file, one ``FILE:LINE: key.path: message`` per line."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class _Raw:
    loc: KeyPath
    message: str


def _key_text(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_VALUE_ERROR_PREFIXES = ("Value error, ", "Assertion failed, ")


def _from_validation(
    exc: ValidationError, prefix: KeyPath, lines: Mapping[KeyPath, int]
) -> list[_Raw]:
    raws = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: list[str | int] = [*prefix]
        parts = err["loc"]
        for i, part in enumerate(parts):
            candidate = (*loc, part)
            # Union members and validator names appear in loc but not in the data.
            if candidate in lines or (err["type"] == "missing" and i == len(parts) - 1):
                loc.append(part)
        message = err["msg"]
        for p in _VALUE_ERROR_PREFIXES:
            if message.startswith(p):
                message = message[len(p) :]
        raws.append(_Raw(tuple(loc), message))
    return raws


def _walk_lines(data: object, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    """For plain data (no YAML): every key path exists, none has a line."""
    lines[path] = 0
    if isinstance(data, Mapping):
        for k, v in data.items():
            _walk_lines(v, (*path, k), lines)
    elif isinstance(data, list | tuple):
        for i, v in enumerate(data):
            _walk_lines(v, (*path, i), lines)


# --- relative paths -------------------------------------------------------------------------


def _is_secret_ref(annotation: object) -> bool:
    if typing.get_origin(annotation) is Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, AfterValidator) and meta.func is plugin._check_secret_ref:
                return True
    return any(_is_secret_ref(arg) for arg in typing.get_args(annotation))


def _absolute(value: object, base: Path, secret_ref: bool) -> object:
    if isinstance(value, BaseModel):
        return _absolutize(value, base)
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if secret_ref and isinstance(value, str) and value.startswith("file:"):
        target = Path(value[5:])
        return value if target.is_absolute() else f"file:{base / target}"
    if isinstance(value, tuple):
        return tuple(_absolute(v, base, secret_ref) for v in value)
    if isinstance(value, list):
        return [_absolute(v, base, secret_ref) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v, base, secret_ref) for k, v in value.items()}
    return value


_M = typing.TypeVar("_M", bound=BaseModel)


def _absolutize(model: _M, base: Path) -> _M:
    """Relative ``Path`` fields and ``file:`` references, anchored at ``base``."""
    update = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        secret_ref = _is_secret_ref(info.annotation) or any(
            isinstance(m, AfterValidator) and m.func is plugin._check_secret_ref
            for m in info.metadata
        )
        new = _absolute(value, base, secret_ref)
        if new is not value:
            update[name] = new
    return model.model_copy(update=update) if update else model


# --- loading --------------------------------------------------------------------------------


def _offers_check(name: str, config: BackendConfig) -> bool:
    """Whether the plugin answers CHECKs with this config (a constructor only stores it)."""
    try:
        backend = load_backend_class(config.type)(name, config)
        return bool(backend.offers_check)
    except Exception:  # the daemon will report a plugin that cannot be built
        return True


def _build(
    data: object, lines: Mapping[KeyPath, int], base_dir: Path | None
) -> tuple[Config | None, list[_Raw]]:
    raws: list[_Raw] = []
    if data is None:
        return None, [_Raw((), "the file is empty")]
    if not isinstance(data, Mapping):
        return None, [_Raw((), "the top level must be a mapping of sections (ingest, queue, …)")]
    raw_backends = data.get("backends")
    if raw_backends is None:
        raw_backends = {}
    backends: dict[str, BackendConfig] = {}
    configured: list[str] = []
    if not isinstance(raw_backends, Mapping):
        raws.append(_Raw(("backends",), "must be a mapping of backend name to its settings"))
        raw_backends = {}
    for name, entry in raw_backends.items():
        where: KeyPath = ("backends", name)
        configured.append(str(name))
        if not isinstance(name, str) or not re.match(_NAME_REGEX, name):
            raws.append(_Raw(where, f"a backend name must match {_NAME_REGEX}"))
            continue
        if not isinstance(entry, Mapping):
            raws.append(_Raw(where, "must be a mapping with at least a 'type' key"))
            continue
        type_name = entry.get("type")
        if type_name is None:
            raws.append(_Raw((*where, "type"), "Field required (the plugin's name)"))
            continue
        if not isinstance(type_name, str):
            raws.append(_Raw((*where, "type"), "must be a plugin name (a string)"))
            continue
        try:
            model = load_backend_class(type_name).config_model
        except UnknownBackendType as exc:
            raws.append(_Raw((*where, "type"), str(exc)))
            continue
        except Exception as exc:  # a broken plugin install: name it, do not crash
            raws.append(
                _Raw(
                    (*where, "type"),
                    f"plugin {type_name!r} cannot be loaded ({type(exc).__name__})",
                )
            )
            continue
        try:
            backends[name] = model.model_validate(dict(entry))
        except ValidationError as exc:
            raws.extend(_from_validation(exc, where, lines))
    precheck = data.get("precheck")
    names = precheck.get("backends") if isinstance(precheck, Mapping) else None
    for i, item in enumerate(names if isinstance(names, list) else []):
        if isinstance(item, str) and item not in configured:
            raws.append(
                _Raw(("precheck", "backends", i), f"no backend named {item!r} is configured")
            )
        elif isinstance(item, str) and item in backends and not _offers_check(item, backends[item]):
            raws.append(
                _Raw(("precheck", "backends", i), f"backend {item!r} offers no policy check")
            )
    if data.get("directory") is None:
        for name, entry in backends.items():
            if entry.scope.needs_directory:
                raws.append(
                    _Raw(
                        ("backends", name, "scope"),
                        "group and OU rules need the top-level directory: section",
                    )
                )
    core = {k: v for k, v in data.items() if k != "backends"}
    core["backends"] = backends
    try:
        config = Config.model_validate(core, context={"names_checked": True})
    except ValidationError as exc:
        raws.extend(_from_validation(exc, (), lines))
        return None, raws
    if raws:
        return None, raws
    return (_absolutize(config, base_dir) if base_dir is not None else config), []


def config_from_data(
    data: object, *, base_dir: Path | None = None, source: str = "<config>"
) -> Config:
    """Validate already-parsed data (tests, the demo); errors carry key paths, no lines."""
    lines: dict[KeyPath, int] = {}
    _walk_lines(data, (), lines)
    config, raws = _build(data, lines, base_dir)
    if config is None:
        raise ConfigError([ConfigProblem(source, None, _key_text(r.loc), r.message) for r in raws])
    return config


def config_from_document(doc: YamlDocument, *, source: str, base_dir: Path | None) -> Config:
    config, raws = _build(doc.data, doc.lines, base_dir)
    if config is None:
        raise ConfigError(
            [ConfigProblem(source, doc.line_of(r.loc), _key_text(r.loc), r.message) for r in raws]
        )
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate a config file; ``ConfigError`` lists every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(source, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(source, None, "", "not UTF-8 text")]) from None
    try:
        doc = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError([ConfigProblem(source, exc.line, "", exc.message)]) from None
    # absolute(), not resolve(): relative paths follow where the file appears to be.
    return config_from_document(doc, source=source, base_dir=path.absolute().parent)


# --- JSON Schema ----------------------------------------------------------------------------


def _installed_models() -> dict[str, type[BackendConfig]]:
    models = {}
    for type_name in available_backend_types():
        try:
            models[type_name] = load_backend_class(type_name).config_model
        except Exception:  # noqa: S112 - a plugin that does not import has no schema to offer
            continue
    return models


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the file; ``backends`` entries are a union keyed by ``type``."""
    variants: list[Any] = []
    for type_name, model in _installed_models().items():
        type_field: Any = (Literal[type_name], Field(description=f"the {type_name} plugin"))
        variant = create_model(
            model.__name__, __base__=model, __doc__=model.__doc__, type=type_field
        )
        variants.append(variant)
    if variants:
        entry: Any = Annotated[typing.Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    else:
        entry = BackendConfig
    schema_model = create_model(
        "Config",
        __base__=Config,
        __doc__="The adsync configuration file (adsync.yaml).",
        backends=(dict[BackendName, entry], Field(default_factory=dict)),
    )
    schema: dict[str, Any] = schema_model.model_json_schema(mode="validation")
    schema["properties"]["backends"]["additionalProperties"] = False  # names outside the pattern
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "adsync configuration"
    return schema


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DirectoryConfig",
    "DispatchConfig",
    "IngestConfig",
    "KeysConfig",
    "ListenAddress",
    "LoggingConfig",
    "MetricsConfig",
    "PrecheckConfig",
    "QueueConfig",
    "SambaConfig",
    "backend_config_from_data",
    "config_from_data",
    "config_json_schema",
    "default_config_path",
    "is_loopback_host",
    "load_config",
    "parse_listen_address",
]
