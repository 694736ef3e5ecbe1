"""Abacus's names: its messages for a name outside the rule both compatible APIs share
(compat/names.py), and its reserved words `:HOST:` and `:PATH:`, which stand for the whole
`Origin` and `Referer` headers. A header that passes Abacus's URL check always holds `://`, which
no name may hold: these words end in a 400 on every route, as they do in Abacus 1.6.0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.di import Provide

from domain.model import DEFAULT_NAMESPACE, CounterId
from entrypoints.http.abacus.answers import AbacusError
from entrypoints.http.abacus.docs import DefaultNamespace, KeyParam, NamespaceParam
from entrypoints.http.compat.names import NAME_MAX_LENGTH, NAME_MIN_LENGTH, NAME_RE

_PATTERN_TEXT = r"^[A-Za-z0-9_\-.]{3,64}$"  # as Abacus writes it in its message
_RESERVED = {":HOST:": "Origin", ":PATH:": "Referer"}
_NOT_IN_URL = frozenset(" \t\r\n<>\"'\\%{}")


def _url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and not _NOT_IN_URL.intersection(value)


def _resolve(part: str, headers: Mapping[str, str]) -> str:
    header = _RESERVED.get(part)
    if header is None:
        return part
    value = headers.get(header.lower())
    if not value:
        raise AbacusError(400, f"{header} header is required if {part} is used")
    if not _url(value):
        raise AbacusError(400, f"Invalid {header} header format")
    return value[:NAME_MAX_LENGTH]  # cut as Abacus cuts it (a URL is never short enough to pad)


def check(name: str, part: str) -> str:
    """`name`, or a 400 in Abacus's words; the length first, in UTF-8 bytes as Abacus counts."""
    if not NAME_MIN_LENGTH <= len(name.encode()) <= NAME_MAX_LENGTH:
        raise AbacusError(
            400,
            f"Invalid {part}: length must be between {NAME_MIN_LENGTH} and {NAME_MAX_LENGTH}"
            " characters inclusive",
        )
    if NAME_RE.fullmatch(name) is None:
        raise AbacusError(400, f"Invalid {part}: must match the pattern {_PATTERN_TEXT}")
    return name


def counter_id(headers: Mapping[str, str], namespace: str, key: str) -> CounterId:
    """The counter `namespace`/`key` name, the namespace checked first."""
    return CounterId(check(_resolve(namespace, headers), "namespace"), check(_resolve(key, headers), "key"))


def full_key(counter: CounterId) -> str:
    """The name Abacus gives the counter in `/info` and `/delete` (its Redis key)."""
    return f"K:{counter.namespace}:{counter.key}"


# The counter of a route, as a dependency: its path parameters are documented once, here.
def provide_counter(request: Request[Any, Any, Any], namespace: NamespaceParam, key: KeyParam) -> CounterId:
    """The counter of `/op/{namespace}/{key}`."""
    return counter_id(request.headers, namespace, key)


def provide_counter_in_default(
    request: Request[Any, Any, Any], key: KeyParam, namespace: DefaultNamespace = None
) -> CounterId:
    """The counter of `/op/{namespace}/{key}`, or of `/op/{key}` in the namespace `default`."""
    return counter_id(request.headers, namespace or DEFAULT_NAMESPACE, key)


COUNTER = {"counter": Provide(provide_counter, sync_to_thread=False)}
COUNTER_IN_DEFAULT = {"counter": Provide(provide_counter_in_default, sync_to_thread=False)}
