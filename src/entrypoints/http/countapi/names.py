"""CountAPI's names: its stricter rule, the one-segment default namespace and the `:HOST:` /
`:PATHNAME:` placeholders, which a page's script sends literally for the server to fill in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.di import Provide
from litestar.params import FromPath

from domain.model import DEFAULT_NAMESPACE, CounterId
from entrypoints.http.compat.names import NAME_MAX_LENGTH, NAME_MIN_LENGTH, NAME_RE

_OUTSIDE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
HOST_PLACEHOLDER = ":HOST:"
PATHNAME_PLACEHOLDER = ":PATHNAME:"
FALLBACK_HOST = "localhost"


class MalformedNameError(Exception):
    """A namespace or key outside CountAPI's rule (answered 400 in CountAPI's own body)."""


def _fit(text: str) -> str:
    # CountAPI keeps what is allowed, then pads short results with dots on the left.
    return _OUTSIDE_NAME.sub("", text)[:NAME_MAX_LENGTH].rjust(NAME_MIN_LENGTH, ".")


def _host(headers: Mapping[str, str]) -> str:
    for header in ("origin", "referer"):
        hostname = urlsplit(headers.get(header, "")).hostname
        if hostname:
            return hostname
    host = headers.get("host", "").rsplit(":", 1)[0]
    return host or FALLBACK_HOST


def _resolve(part: str, headers: Mapping[str, str]) -> str:
    if part == HOST_PLACEHOLDER:
        return _fit(_host(headers))
    if part == PATHNAME_PLACEHOLDER:
        return _fit(urlsplit(headers.get("referer", "")).path)
    return part


def check(name: str) -> str:
    if NAME_RE.fullmatch(name) is None:
        raise MalformedNameError(name)
    return name


def counter_id(headers: Mapping[str, str], first: str, second: str | None) -> CounterId:
    """`/op/key` is the key in namespace `default`; `/op/namespace/key` names both."""
    namespace, key = (DEFAULT_NAMESPACE, first) if second is None else (first, second)
    return CounterId(check(_resolve(namespace, headers)), check(_resolve(key, headers)))


def provide_counter(
    request: Request[Any, Any, Any], first: FromPath[str], second: FromPath[str | None] = None
) -> CounterId:
    """The counter of `/op/key` or `/op/namespace/key`, for every route that names one."""
    return counter_id(request.headers, first, second)


COUNTER = {"counter": Provide(provide_counter, sync_to_thread=False)}


def x_path(counter: CounterId) -> str:
    return f"{counter.namespace}/{counter.key}"
