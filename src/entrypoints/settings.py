"""Settings from COUNTER_* environment variables, validated once at start-up.

Each setting is declared once, as a field of `Settings` built with `setting(...)`: its type
(the annotation), its default, its help, the parser that gives its accepted values, and whether
it is a secret. Its variable is `COUNTER_` + the field name in upper case. Everything else is
derived from that declaration (`DECLARED`): parsing in `Settings.from_env`, the options and
help of `counter serve`, the redaction in `counter settings` and the logs, the `_FILE`
variables of secrets (setting_sources.py), the warning about `COUNTER_*` variables that are no
setting, and the test that checks the README's table. A setting therefore cannot exist in one
place and be missing, or have another default, in another.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from entrypoints import setting_formats as formats
from entrypoints import setting_sources as sources

BACKENDS = ("sqlite", "redis", "memory", "configmap")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

T = TypeVar("T")

# The key under which a field's declaration rides in `dataclasses.field(metadata=...)`.
_DECLARATION = "counter.setting"


class SettingsError(ValueError):
    """A setting is wrong; the message names the variable and what is allowed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _as_is(value: object) -> object:
    return value


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """How a variable's text becomes a typed value, and what it accepts.

    `accepts` is written once here and shown both in the error for a wrong value and after the
    help, in parentheses, so bounds cannot drift between the check and its description.
    `shown` is how the value appears in logs and `counter settings`: a URL hides its password.
    """

    convert: Callable[[str, str], T]
    accepts: str = ""
    shown: Callable[[T], object] = _as_is


@dataclass(frozen=True, slots=True)
class _Declaration:
    help: str
    parser: Parser[Any]
    secret: bool
    from_file: bool


def setting(
    help_text: str, *, default: T, parse: Parser[T], secret: bool = False, from_file: bool = False
) -> T:
    """Declare a field of `Settings`: its default, help, parser and secrecy, in one place.

    Typed as returning the default's type, like `dataclasses.field`, so that the field's
    annotation is checked against both the default and the parser. A secret is read from the
    environment only (a command-line value ends up in `ps` and shell history) and is shown
    only as set or not set. A secret, and a setting declared `from_file` (a URL that may hold
    a password), may instead be read from the file named by its variable + `_FILE`, the way
    container platforms mount secrets.
    """
    declaration = _Declaration(help=help_text, parser=parse, secret=secret, from_file=from_file or secret)
    return dataclasses.field(default=default, metadata={_DECLARATION: declaration})


def _text(_variable: str, value: str) -> str:
    return value


def _non_empty(variable: str, value: str) -> str:
    if not value:
        raise SettingsError(variable, "must not be empty")
    return value


def _host(variable: str, value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise SettingsError(variable, f"{value!r} is not a host name or address")
    return value


def _bool(variable: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(variable, f"{value!r} is not a boolean (true or false)")


def _positive_float(variable: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(variable, f"{value!r} is not a number of seconds") from None
    if not number > 0:
        raise SettingsError(variable, "must be greater than 0")
    return number


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
    return url


def _either(options: tuple[str, ...]) -> str:
    return f"{', '.join(options[:-1])} or {options[-1]}" if len(options) > 1 else options[0]


text: Parser[str] = Parser(_text)
non_empty: Parser[str] = Parser(_non_empty)
address: Parser[str] = Parser(_host)
boolean: Parser[bool] = Parser(_bool)
positive_seconds: Parser[float] = Parser(_positive_float, accepts="greater than 0")


def choice(options: tuple[str, ...]) -> Parser[str]:
    """One of `options`, case-insensitive, kept in lower case."""
    accepts = ", ".join(options)

    def convert(variable: str, value: str) -> str:
        if value.lower() not in options:
            raise SettingsError(variable, f"{value!r} is not one of {accepts}")
        return value.lower()

    return Parser(convert, accepts=accepts)


def url(schemes: tuple[str, ...]) -> Parser[str]:
    """A URL with one of `schemes`; shown with its password hidden."""
    accepts = _either(schemes)

    def convert(variable: str, value: str) -> str:
        if not value.startswith(schemes):
            raise SettingsError(variable, f"{_redact_url(value)!r} must start with {accepts}")
        return value

    return Parser(convert, accepts=accepts, shown=_redact_url)


def int_between(low: int, high: int) -> Parser[int]:
    """A whole number from `low` to `high`, both included."""
    accepts = f"{low}-{high}"

    def convert(variable: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(variable, f"{value!r} is not a whole number ({accepts})") from None
        if not low <= number <= high:
            raise SettingsError(variable, f"{number} is out of range ({accepts})")
        return number

    return Parser(convert, accepts=accepts)


def rate_or_zero(low: float, high: float) -> Parser[float]:
    """A number per second from `low` to `high`, fractions allowed, or 0 for no limit."""
    accepts = f"0 or {low:g}-{high:g}"

    def convert(variable: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(variable, f"{value!r} is not a number ({accepts})") from None
        if number != 0 and not low <= number <= high:
            raise SettingsError(variable, f"{value} is out of range ({accepts})")
        return number

    return Parser(convert, accepts=accepts)


def checked(convert: Callable[[str], T], accepts: str) -> Parser[T]:
    """A parser from a function that raises ValueError saying what is wrong with a value."""

    def parse(variable: str, value: str) -> T:
        try:
            return convert(value)
        except ValueError as error:
            raise SettingsError(variable, str(error)) from None

    return Parser(parse, accepts=accepts)


rate: Parser[str] = checked(formats.rate, formats.RATE_ACCEPTS)
origins: Parser[str] = checked(formats.origins, formats.listed("origin"))
methods: Parser[str] = checked(formats.methods, formats.listed("method"))
field_names: Parser[str] = checked(formats.field_names, formats.listed("header"))


@dataclass(frozen=True, slots=True)
class Settings:
    """What the service runs with; each field is one COUNTER_* variable (see the module's doc)."""

    backend: str = setting(
        "where counters live: an embedded SQLite file, Redis shared by replicas, a Kubernetes"
        " ConfigMap, or memory in one process with nothing kept",
        default="sqlite",
        parse=choice(BACKENDS),
    )
    host: str = setting("address to listen on (0.0.0.0 in a container)", default="127.0.0.1", parse=address)
    port: int = setting("TCP port to listen on", default=8000, parse=int_between(1, 65535))
    workers: int = setting("worker processes; memory allows only 1", default=1, parse=int_between(1, 64))
    log_level: str = setting("least severe level logged", default="info", parse=choice(LOG_LEVELS))
    log_format: str = setting(
        "text is readable, json is one JSON object per line", default="text", parse=choice(LOG_FORMATS)
    )
    access_log: bool = setting("one log line per request", default=True, parse=boolean)
    sqlite_path: str = setting(
        "SQLite database file (created with its folder)", default="data/counter.db", parse=non_empty
    )
    sqlite_lock_timeout_seconds: float = setting(
        "longest a request waits for the SQLite write lock another process holds; then 503 with"
        " Retry-After and nothing counted (reads do not wait for it)",
        default=2.0,
        parse=positive_seconds,
    )
    redis_url: str = setting(
        "Redis URL", default="redis://127.0.0.1:6379/0", parse=url(REDIS_SCHEMES), from_file=True
    )
    redis_prefix: str = setting(
        "prefix of every Redis key the service writes", default="counter:", parse=text
    )
    configmap_name: str = setting(
        "ConfigMap that holds the counters", default="counter-store", parse=non_empty
    )
    configmap_namespace: str = setting(
        "its namespace; empty: the pod's own, else the kubeconfig context's, else 'default'",
        default="",
        parse=text,
    )
    kubeconfig: str = setting(
        "kubeconfig outside a cluster; empty: the pod's in-cluster config, else KUBECONFIG or ~/.kube/config",
        default="",
        parse=text,
    )
    configmap_coalesce: bool = setting(
        "group concurrent increments into one API write", default=True, parse=boolean
    )
    configmap_max_writes_per_second: float = setting(
        "most Kubernetes API writes per second the ConfigMap store makes, per process (bursts of"
        " one second's worth); under load more increments go into each write; 0: no limit",
        default=10.0,
        parse=rate_or_zero(1, 1000),
    )
    admin_token: str = setting(
        "bearer token for PUT/DELETE; empty: admin routes answer 403", default="", parse=text, secret=True
    )
    idempotency_ttl_seconds: float = setting(
        "how long an Idempotency-Key is remembered, in seconds", default=86400.0, parse=positive_seconds
    )
    max_body_bytes: int = setting(
        "largest request body accepted, in bytes; larger ones get 413",
        default=4096,
        parse=int_between(64, 1024 * 1024),
    )
    max_header_bytes: int = setting(
        "largest request head (request line and headers), in bytes; a larger one gets 431 and its"
        " connection is closed",
        default=16384,
        parse=int_between(1024, 1024 * 1024),
    )
    keep_alive_seconds: int = setting(
        "how long a connection may stay idle, before its first request or between two, before it is closed",
        default=5,
        parse=int_between(1, 600),
    )
    header_timeout_seconds: int = setting(
        "time a client has to send a request's line and headers once they have begun; a slower one"
        " gets 408 and its connection is closed",
        default=10,
        parse=int_between(1, 600),
    )
    body_timeout_seconds: int = setting(
        "time a client has to send a request's body after its headers; a slower one gets 408 and its"
        " connection is closed",
        default=10,
        parse=int_between(1, 600),
    )
    send_timeout_seconds: int = setting(
        "how long a client may leave its response unread (the server's send buffer full) before its"
        " connection is dropped",
        default=30,
        parse=int_between(1, 600),
    )
    shutdown_timeout_seconds: int = setting(
        "on SIGTERM, how long requests in flight may take to finish before they are cancelled (a body"
        " still arriving gets at most 1 second more)",
        default=10,
        parse=int_between(1, 600),
    )
    fast_path: bool = setting(
        "answer POST increments from a lean layer on their routes, inside the framework's pipeline"
        " (same answers, faster); false: the handlers' full pipeline",
        default=True,
        parse=boolean,
    )
    rate_limit_per_client: str = setting(
        "most requests one client address may make in a window that starts with its first (health"
        " checks not counted); beyond it 429 with Retry-After",
        default="",
        parse=rate,
    )
    rate_limit_per_counter_writes: str = setting(
        "most writes (POST, PUT, DELETE) one counter may take in a window, from all clients together;"
        " beyond it 429 with Retry-After",
        default="",
        parse=rate,
    )
    trusted_proxy_hops: int = setting(
        "proxies in front of the service whose X-Forwarded-For is believed: 0 takes the client's address"
        " from the connection, n the n-th address from the right of X-Forwarded-For",
        default=0,
        parse=int_between(0, 16),
    )
    events_max_streams: int = setting(
        "most live-update streams (GET .../events) one server process keeps open; past it 503 with"
        " Retry-After",
        default=1000,
        parse=int_between(1, 100000),
    )
    events_idle_timeout_seconds: int = setting(
        "a live-update stream is closed after this long without a change (EventSource reconnects)",
        default=300,
        parse=int_between(1, 86400),
    )
    events_heartbeat_seconds: float = setting(
        "how often an open stream without changes sends a `: ping` comment",
        default=15.0,
        parse=positive_seconds,
    )
    events_buffer_events: int = setting(
        "changes a stream may hold unsent for a slow client; when full, the client is dropped",
        default=64,
        parse=int_between(1, 10000),
    )
    events_poll_interval_seconds: float = setting(
        "how often the SQLite store looks for changes by other processes, while streams are open",
        default=0.25,
        parse=positive_seconds,
    )
    cors_allow_origins: str = setting(
        "origins whose browser pages may call the API; empty: CORS off", default="", parse=origins
    )
    cors_allow_methods: str = setting(
        "methods those pages may use", default="GET,HEAD,POST,PUT,DELETE", parse=methods
    )
    cors_allow_headers: str = setting(
        "request headers those pages may send",
        default="Authorization,Content-Type,Idempotency-Key,X-Request-ID",
        parse=field_names,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every declared variable; a missing one takes its default, a wrong one raises.

        A default goes through the same parser as a value from the environment, so that the
        text shown in `--help` and the README is exactly what the service runs with.
        """
        env = os.environ if environ is None else environ
        values = {declared.name: declared.parse(declared.text(env).strip()) for declared in DECLARED}
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Rules that involve more than one variable."""
        if self.backend == "memory" and self.workers > 1:
            raise SettingsError(
                "COUNTER_WORKERS",
                f"the memory store lives in one process and cannot be shared by {self.workers} workers;"
                " use 1 worker, or COUNTER_BACKEND=sqlite or redis",
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets are replaced by whether they are set."""
        values = self.as_dict()
        for declared in DECLARED:
            value = values[declared.name]
            if declared.secret:
                values[declared.name] = "<set>" if value else "<not set>"
            else:
                values[declared.name] = declared.parser.shown(value)
        return values


@dataclass(frozen=True, slots=True)
class Declared:
    """One setting as declared on `Settings`, with what the outside world sees of it."""

    name: str
    default: object
    help_text: str
    parser: Parser[Any]
    secret: bool
    from_file: bool = False

    @property
    def variable(self) -> str:
        return "COUNTER_" + self.name.upper()

    @property
    def file_variable(self) -> str | None:
        """The variable that names a file holding the value, for the settings that allow one."""
        return f"{self.variable}_FILE" if self.from_file else None

    def text(self, env: Mapping[str, str]) -> str:
        """The setting's text: from its variable, or the file its `_FILE` variable names (one
        trailing newline dropped, as editors and `echo` add one), or the default."""
        file_variable = self.file_variable
        path = env.get(file_variable) if file_variable else None
        if file_variable is None or path is None:
            return env.get(self.variable, self.default_text)
        if self.variable in env:
            raise SettingsError(
                self.variable, f"{self.variable} and {file_variable} are both set; set only one of them"
            )
        try:
            return sources.read_file(path)
        except ValueError as error:
            raise SettingsError(file_variable, str(error)) from None

    @property
    def help(self) -> str:
        """The declared help, followed by the accepted values where the parser bounds them."""
        accepts = self.parser.accepts
        return f"{self.help_text} ({accepts})" if accepts else self.help_text

    @property
    def default_text(self) -> str:
        """The default as it is written in the environment: `true`, `86400`, `data/counter.db`."""
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def parse(self, value: str) -> Any:
        return self.parser.convert(self.variable, value)


def _declared() -> tuple[Declared, ...]:
    declared = []
    for field in dataclasses.fields(Settings):
        declaration = field.metadata.get(_DECLARATION)
        if not isinstance(declaration, _Declaration):
            raise TypeError(f"Settings.{field.name} is not declared with setting(...)")
        declared.append(
            Declared(
                field.name,
                field.default,
                declaration.help,
                declaration.parser,
                declaration.secret,
                declaration.from_file,
            )
        )
    return tuple(declared)


DECLARED: tuple[Declared, ...] = _declared()


def known_variables() -> list[str]:
    """Every variable the settings read: each declared one, and its `_FILE` where it has one."""
    return [name for declared in DECLARED for name in (declared.variable, declared.file_variable) if name]
