"""What the rate-limit and CORS settings accept. Each function takes a variable's text and
returns it in one canonical form, or raises ValueError saying what is wrong (settings.py adds
the variable's name)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

# The periods of Litestar's RateLimitConfig, in seconds.
RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_MOST_PER_PERIOD = 1_000_000
RATE_ACCEPTS = (
    f"empty: no limit, or N/second, N/minute, N/hour or N/day with N from 1 to {_MOST_PER_PERIOD:,}"
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # a field name or a method (RFC 9110, 5.6.2)


def rate(text: str) -> str:
    """Empty (no limit) or `N/period`, kept as `N/period` in lower case: ` 100 / Minute` -> `100/minute`."""
    if not text:
        return ""
    count, slash, period = text.replace(" ", "").lower().partition("/")
    digits = count.isascii() and count.isdigit()
    if not (slash and period in RATE_PERIODS and digits and 1 <= int(count) <= _MOST_PER_PERIOD):
        raise ValueError(f"{text!r} is not a rate like 100/minute ({RATE_ACCEPTS})")
    return f"{int(count)}/{period}"


def rate_parts(value: str) -> tuple[int, str] | None:
    """A value `rate` returned, as (requests, period): `100/minute` -> (100, "minute"); empty: None."""
    if not value:
        return None
    count, _, period = value.partition("/")
    return int(count), period


def listed(kind: str) -> str:
    """What a list setting accepts, for its help."""
    return f"comma-separated {kind}s, or * for any"


def _listed(kind: str, valid: Callable[[str], bool], what: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if "*" in items and len(items) > 1:
            raise ValueError(f"* allows any {kind}: give it alone, or list each one")
        for item in items:
            if item != "*" and not valid(item):
                raise ValueError(f"{item!r} is not {what}")
        return ",".join(items)

    return convert


def _is_origin(text: str) -> bool:
    """`https://app.example` or `http://localhost:3000`: what a browser sends as `Origin`."""
    try:
        parts = urlsplit(text)
        port = parts.port  # a port out of range raises
    except ValueError:
        return False
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return (
        default_port is not None
        and bool(parts.hostname)
        and port != default_port
        and not (parts.username or parts.password)
        and f"{parts.scheme}://{parts.netloc}" == text
    )


_origins = _listed(
    "origin",
    _is_origin,
    "an origin as browsers send it: a scheme and a host, the port only if it is not the scheme's"
    " own, no path (https://app.example, http://localhost:3000)",
)
_methods = _listed("method", lambda item: item in HTTP_METHODS, f"one of {', '.join(HTTP_METHODS)}")


def origins(text: str) -> str:
    return _origins(text.lower())  # browsers send scheme and host in lower case


def methods(text: str) -> str:
    return _methods(text.upper())


field_names = _listed("header", lambda item: _TOKEN.fullmatch(item) is not None, "a header name")
