"""Settings from COUNTER_* environment variables, validated once at start-up.

Every variable is in one table (`SPECS`), which also feeds `counter serve --help` and the README,
so that a setting cannot exist in one place and be missing from another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

BACKENDS = ("sqlite", "redis", "memory", "configmap")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting is wrong; the message names the variable and what is allowed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Spec:
    variable: str
    default: str
    help: str


SPECS: tuple[Spec, ...] = (
    Spec(
        "COUNTER_BACKEND", "sqlite", "store: sqlite (embedded file), redis, configmap or memory (one process)"
    ),
    Spec("COUNTER_HOST", "127.0.0.1", "address to listen on (0.0.0.0 in a container)"),
    Spec("COUNTER_PORT", "8000", "TCP port to listen on (1-65535)"),
    Spec("COUNTER_WORKERS", "1", "worker processes (1-64); memory allows only 1"),
    Spec("COUNTER_LOG_LEVEL", "info", "debug, info, warning, error or critical"),
    Spec("COUNTER_LOG_FORMAT", "text", "text (readable) or json (one JSON object per line)"),
    Spec("COUNTER_ACCESS_LOG", "true", "one log line per request: true or false"),
    Spec("COUNTER_SQLITE_PATH", "data/counter.db", "SQLite database file (created with its folder)"),
    Spec("COUNTER_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (redis:// or rediss://)"),
    Spec("COUNTER_REDIS_PREFIX", "counter:", "prefix of every Redis key the service writes"),
    Spec("COUNTER_CONFIGMAP_NAME", "counter-store", "ConfigMap that holds the counters"),
    Spec(
        "COUNTER_CONFIGMAP_NAMESPACE",
        "",
        "its namespace; empty: the pod's own, else the kubeconfig context's, else 'default'",
    ),
    Spec("COUNTER_KUBECONFIG", "", "kubeconfig outside a cluster; empty: KUBECONFIG or ~/.kube/config"),
    Spec("COUNTER_CONFIGMAP_COALESCE", "true", "group concurrent increments into one API write"),
    Spec("COUNTER_ADMIN_TOKEN", "", "bearer token for PUT/DELETE; empty: admin routes answer 403"),
    Spec("COUNTER_IDEMPOTENCY_TTL_SECONDS", "86400", "how long an Idempotency-Key is remembered"),
    Spec("COUNTER_MAX_BODY_BYTES", "4096", "largest request body accepted (413 beyond)"),
    Spec(
        "COUNTER_FAST_PATH",
        "true",
        "serve POST increments on a lean ASGI path in front of the framework (same answers, faster)",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str = "sqlite"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    sqlite_path: str = "data/counter.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "counter:"
    configmap_name: str = "counter-store"
    configmap_namespace: str = ""
    kubeconfig: str = ""
    configmap_coalesce: bool = True
    admin_token: str = ""
    idempotency_ttl_seconds: float = 86400.0
    max_body_bytes: int = 4096
    fast_path: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw = {spec.variable: env.get(spec.variable, spec.default).strip() for spec in SPECS}
        values: dict[str, Any] = {}
        for spec in SPECS:
            field = spec.variable.removeprefix("COUNTER_").lower()
            values[field] = _PARSERS.get(field, _text)(spec.variable, raw[spec.variable])
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
        return asdict(self)

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets are replaced by whether they are set."""
        values = self.as_dict()
        values["admin_token"] = "<set>" if self.admin_token else "<not set>"
        values["redis_url"] = _redact_url(self.redis_url)
        return values


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
    return url


def _text(_variable: str, value: str) -> str:
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(variable: str, value: str) -> str:
        if value.lower() not in options:
            raise SettingsError(variable, f"{value!r} is not one of {', '.join(options)}")
        return value.lower()

    return parse


def _int_between(low: int, high: int) -> Callable[[str, str], int]:
    def parse(variable: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(variable, f"{value!r} is not a whole number ({low}-{high})") from None
        if not low <= number <= high:
            raise SettingsError(variable, f"{number} is out of range ({low}-{high})")
        return number

    return parse


def _positive_float(variable: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(variable, f"{value!r} is not a number of seconds") from None
    if not number > 0:
        raise SettingsError(variable, "must be greater than 0")
    return number


def _bool(variable: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(variable, f"{value!r} is not a boolean (true or false)")


def _non_empty(variable: str, value: str) -> str:
    if not value:
        raise SettingsError(variable, "must not be empty")
    return value


def _redis_url(variable: str, value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            variable, f"{_redact_url(value)!r} must start with redis://, rediss:// or unix://"
        )
    return value


def _host(variable: str, value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise SettingsError(variable, f"{value!r} is not a host name or address")
    return value


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "backend": _choice(BACKENDS),
    "host": _host,
    "port": _int_between(1, 65535),
    "workers": _int_between(1, 64),
    "log_level": _choice(LOG_LEVELS),
    "log_format": _choice(LOG_FORMATS),
    "access_log": _bool,
    "sqlite_path": _non_empty,
    "redis_url": _redis_url,
    "redis_prefix": _text,
    "configmap_name": _non_empty,
    "configmap_coalesce": _bool,
    "idempotency_ttl_seconds": _positive_float,
    "max_body_bytes": _int_between(64, 1024 * 1024),
    "fast_path": _bool,
}
