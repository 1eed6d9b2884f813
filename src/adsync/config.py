"""The configuration file: pydantic models for every key, and a loader whose errors say
``FILE:LINE: key.path: message``.

The file is validated once, by ``config_model()``: ``Config`` whose backend entries are
the discriminated union (keyed by ``type``) of the installed plugins' config models
(entry points), the same model the JSON Schema is generated from, so a third-party
plugin's keys are checked as strictly as ours. Secret fields (marked ``SecretField``)
stay references (``file:``/``env:``): ``check-config`` validates a file on a machine that
does not hold the secrets. Relative paths, also inside ``file:`` references, resolve
against the config file's directory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from adsync.config_wording import operator_message
from adsync.duration import FILE_CONTEXT, Duration
from adsync.ingest.codec import Limits
from adsync.ingest.wire import MIN_FRAME, PROTOCOL_MAX_FRAME
from adsync.plugin import (
    BackendConfig,
    StrictModel,
    UnknownBackendType,
    available_backend_types,
    is_loopback_host,
    load_backend_class,
)
from adsync.secret import SecretField
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


_LIMITS: Final = Limits()  # the spec's defaults are the config's


class IngestConfig(StrictModel):
    """Where sources (the filter DLL, the Samba hook, ``adsync test``) reach the daemon."""

    unix_socket: Path | None = Path("/run/adsync/filter.sock")
    socket_group: str | None = Field(default=None, min_length=1)
    allowed_uids: tuple[Annotated[int, Field(ge=0)], ...] = (0,)
    tcp: LoopbackAddress | None = Field(default="127.0.0.1:17635", validate_default=True)
    psk_file: Path = Path("/etc/adsync/filter.key")
    max_connections: int = Field(default=_LIMITS.max_connections, ge=1, le=65536)
    max_handshakes: int = Field(default=_LIMITS.max_handshakes, ge=1, le=65536)
    max_handshakes_per_peer: int = Field(default=_LIMITS.max_handshakes_per_peer, ge=1, le=65536)
    frame_timeout: Duration = Field(default=_LIMITS.frame_timeout, gt=0)
    idle_timeout: Duration = Field(default=_LIMITS.idle_timeout, gt=0)
    handshake_timeout: Duration = Field(default=_LIMITS.handshake_timeout, gt=0)
    max_frame: int = Field(default=_LIMITS.max_frame, ge=MIN_FRAME, le=PROTOCOL_MAX_FRAME)
    max_field: int = Field(default=_LIMITS.max_field, ge=1, le=65536)
    max_password: int = Field(default=_LIMITS.max_password, ge=1, le=65536)

    def limits(self) -> Limits:
        """What the ingest servers enforce: the keys this section shares with ``Limits``
        (the others keep the spec's defaults)."""
        shared = (f.name for f in dataclasses.fields(Limits) if f.name in type(self).model_fields)
        return Limits(**{name: getattr(self, name) for name in shared})

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
    # Samba kills the check script at 10 s; 3 s leaves the daemon's own precheck.timeout
    # (1.5 s) room and Samba a real margin; 8 s at most (start-up under load).
    check_deadline: Duration = Field(default=3.0, gt=0, le=8.0)


# --- the whole file -----------------------------------------------------------------------


class Config(StrictModel):
    """The whole file. Unset sections take their defaults.

    Build it with ``load_config`` / ``config_from_data``: they validate ``backends``
    entries through the union of the installed plugins' models (``config_model()``)
    and check the references between sections.
    """

    ingest: IngestConfig = IngestConfig()
    queue: QueueConfig = QueueConfig()
    keys: KeysConfig = KeysConfig()
    precheck: PrecheckConfig = PrecheckConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    dispatch: DispatchConfig = DispatchConfig()
    samba: SambaConfig = SambaConfig()
    # Required and not empty: a daemon with no target would take passwords and send none.
    backends: dict[BackendName, BackendConfig] = Field(min_length=1)

    @field_validator("backends", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value  # ``backends:`` with every entry commented out


# --- backends: one discriminated union of the installed plugins' models ---------------------


@dataclass(frozen=True, slots=True)
class _Plugins:
    models: tuple[tuple[str, type[BackendConfig]], ...]  # type name, config model
    broken: Mapping[str, str]  # type name -> why its plugin does not load


def _installed_plugins() -> _Plugins:
    models: list[tuple[str, type[BackendConfig]]] = []
    broken: dict[str, str] = {}
    for type_name in available_backend_types():
        try:
            models.append((type_name, load_backend_class(type_name).config_model))
        except Exception as exc:  # a broken plugin install: named in errors, not a crash
            broken[type_name] = type(exc).__name__
    return _Plugins(tuple(models), broken)


@functools.cache
def _union_model(models: tuple[tuple[str, type[BackendConfig]], ...]) -> type[Config]:
    """``Config`` whose ``backends`` entries are the union of ``models`` keyed by ``type``.

    Cached per set of installed models: configs loaded twice (a reload) are instances
    of the same classes, so they compare equal when their values do.
    """
    variants: list[Any] = []
    for type_name, model in models:
        type_field: Any = (Literal[type_name], Field(description=f"the {type_name} plugin"))
        variants.append(
            create_model(model.__name__, __base__=model, __doc__=model.__doc__, type=type_field)
        )
    entry: Any = BackendConfig
    if variants:
        entry = Annotated[typing.Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    return create_model(
        "Config",
        __base__=Config,
        __doc__="The adsync configuration file (adsync.yaml).",
        backends=(dict[BackendName, entry], Field(min_length=1)),
    )


def config_model() -> type[Config]:
    """The model the loader validates with and the JSON Schema is generated from."""
    return _union_model(_installed_plugins().models)


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str
    column: int | None = None  # 1-based; YAML syntax errors only

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where = f"{where}:{self.column}"
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


def _problems(
    exc: ValidationError,
    model: type[Config],
    data: Mapping[Any, Any],
    lines: Mapping[KeyPath, int],
    plugins: _Plugins,
) -> list[_Raw]:
    """Each validation error at the key it concerns, in the operator's words."""
    raws = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: KeyPath = ()
        parts = err["loc"]
        for i, part in enumerate(parts):
            # Union members and dict-key markers appear in loc but not in the data.
            if (*loc, part) in lines or (err["type"] == "missing" and i == len(parts) - 1):
                loc = (*loc, part)
        message = operator_message(err, model)
        if parts[:1] == ("backends",):
            loc, message = _backend_problem(err["type"], parts, loc, message, data, plugins)
        raws.append(_Raw(loc, message))
    return raws


def _backend_problem(
    kind: str,
    parts: tuple[str | int, ...],
    loc: KeyPath,
    message: str,
    data: Mapping[Any, Any],
    plugins: _Plugins,
) -> tuple[KeyPath, str]:
    """The ``backends`` section's errors that pydantic words for its own union machinery."""
    if parts == ("backends",) and kind == "dict_type":
        return loc, "must be a mapping of backend name to its settings"
    if parts == ("backends",) and kind in ("missing", "too_short"):
        return ("backends",), (
            "no backend is configured: add at least one target under `backends:` "
            "(docs/configuration.md, Backends)"
        )
    if "[key]" in parts:
        return loc, (
            "a backend name is 1 to 63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if len(parts) != 2:
        return loc, message  # inside a plugin's model: its own words
    if kind == "model_attributes_type":
        return loc, "must be a mapping with at least a 'type' key"
    if kind not in ("union_tag_not_found", "union_tag_invalid"):
        return loc, message
    type_name = data["backends"][parts[1]].get("type")
    if type_name is None:  # absent, or ``type:`` left empty
        return (*loc, "type"), "required key missing (the plugin's name)"
    if not isinstance(type_name, str):
        return (*loc, "type"), "must be a plugin name such as webhook"
    if type_name in plugins.broken:
        why = plugins.broken[type_name]
        return (*loc, "type"), f"plugin {type_name!r} cannot be loaded ({why})"
    installed = sorted([name for name, _ in plugins.models] + list(plugins.broken))
    return (*loc, "type"), str(UnknownBackendType(type_name, installed))


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


def _is_secret_field(annotation: object, metadata: Sequence[object] = ()) -> bool:
    """True if the field holds a secret reference: ``SecretField`` among its metadata, at
    any depth of its annotation (``SecretRef | None`` included)."""
    if any(isinstance(meta, SecretField) for meta in metadata):
        return True
    if typing.get_origin(annotation) is Annotated:
        if any(isinstance(meta, SecretField) for meta in typing.get_args(annotation)[1:]):
            return True
    return any(_is_secret_field(arg) for arg in typing.get_args(annotation))


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
        new = _absolute(value, base, _is_secret_field(info.annotation, info.metadata))
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


def _reference_problems(data: Mapping[Any, Any], config: Config | None) -> list[_Raw]:
    """``precheck.backends`` names configured backends that offer a policy check (the
    latter known only once the backends are valid)."""
    backends = data.get("backends")
    configured = {str(name) for name in backends} if isinstance(backends, Mapping) else set()
    precheck = data.get("precheck")
    names = precheck.get("backends") if isinstance(precheck, Mapping) else None
    raws = []
    for i, item in enumerate(names if isinstance(names, list | tuple) else ()):
        where = ("precheck", "backends", i)
        if not isinstance(item, str):
            continue  # the model reports it
        if item not in configured:
            raws.append(_Raw(where, f"no backend named {item!r} is configured"))
        elif config is not None and not _offers_check(item, config.backends[item]):
            raws.append(_Raw(where, f"backend {item!r} offers no policy check"))
    return raws


def _build(
    data: object, lines: Mapping[KeyPath, int], base_dir: Path | None
) -> tuple[Config | None, list[_Raw]]:
    if data is None:
        return None, [_Raw((), "the file is empty")]
    if not isinstance(data, Mapping):
        return None, [_Raw((), "the top level must be a mapping of sections (ingest, queue, …)")]
    plugins = _installed_plugins()
    model = _union_model(plugins.models)
    config: Config | None = None
    raws: list[_Raw] = []
    try:
        config = model.model_validate(dict(data), context=dict(FILE_CONTEXT))
    except ValidationError as exc:
        raws = _problems(exc, model, data, lines, plugins)
    raws += _reference_problems(data, config)
    if config is None or raws:
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
        raise ConfigError([ConfigProblem(source, exc.line, "", exc.message, exc.column)]) from None
    # absolute(), not resolve(): relative paths follow where the file appears to be.
    return config_from_document(doc, source=source, base_dir=path.absolute().parent)


def key_line(path: str | os.PathLike[str], key: KeyPath) -> int | None:
    """The line of ``key`` in the config file at ``path`` (for messages after loading)."""
    try:
        return parse_yaml(Path(path).read_text(encoding="utf-8")).line_of(key)
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        return None


# --- JSON Schema ----------------------------------------------------------------------------


def config_json_schema(types: Sequence[str] | None = None) -> dict[str, Any]:
    """JSON Schema of the file; ``backends`` entries are a union keyed by ``type`` over
    ``types`` (default: every installed plugin; adsync's own for the committed file)."""
    models = _installed_plugins().models
    if types is not None:
        models = tuple((name, model) for name, model in models if name in types)
    schema: dict[str, Any] = _union_model(models).model_json_schema(mode="validation")
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
    "DispatchConfig",
    "IngestConfig",
    "KeysConfig",
    "ListenAddress",
    "LoggingConfig",
    "MetricsConfig",
    "PrecheckConfig",
    "QueueConfig",
    "SambaConfig",
    "config_from_data",
    "config_json_schema",
    "config_model",
    "default_config_path",
    "is_loopback_host",
    "key_line",
    "load_config",
    "parse_listen_address",
]
