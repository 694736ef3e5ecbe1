"""Abacus's answers: compact JSON with the keys sorted (as Go writes a map), `{"error": ...}`
for every refusal it names, JSONP on the successes of `hit` and `get`, and numbers and
durations written the way Go writes them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response

from entrypoints.http.compat.jsonp import JSON_TYPE, MALFORMED_CALLBACK, jsonp_answer, valid_callback

API_VERSION = "1.6.0"  # the Abacus release whose API these routes serve
_SECOND_NS = 1_000_000_000
_EXPONENT = re.compile(r"e([+-])0*(\d)")


class AbacusError(Exception):
    """A refusal Abacus answers with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    # Any: each route documents the Struct of its body; the bytes are that body, keys sorted.
    return Response(
        msgspec.json.encode(body, order="sorted"), status_code=status, media_type=JSON_TYPE, headers=headers
    )


def error_answer(_request: Request[Any, Any, Any], error: AbacusError) -> Response[Any]:
    return answer(error.status, {"error": error.message}, error.headers)


def value_answer(callback: str | None) -> Callable[[int], Response[Any]]:
    """How to answer `{"value": N}`: as JSON, or as JSONP for a `?callback=` that is not empty.
    A malformed callback is refused here, before the route does anything."""
    if not callback:
        return lambda value: answer(200, {"value": value})
    if not valid_callback(callback):
        raise AbacusError(400, MALFORMED_CALLBACK)
    return lambda value: jsonp_answer(callback, {"value": value})


def go_float(number: float) -> msgspec.Raw:
    """`number` as Go's encoding/json writes a float64: integral values without `.0`, tiny
    ones in exponent form without padding (`-2e-9`)."""
    if number.is_integer() and abs(number) < 1e21:  # noqa: PLR2004 (where Go switches to exponents)
        return msgspec.Raw(str(int(number)).encode())
    text = repr(number) if math.isfinite(number) else "null"
    return msgspec.Raw(_EXPONENT.sub(r"e\1\2", text).encode())


def _fraction(value: int, digits: int) -> tuple[str, int]:
    # The last `digits` digits of `value` as a decimal fraction without trailing zeros, and the rest.
    text = f"{value % 10**digits:0{digits}d}".rstrip("0") if digits else ""
    return (f".{text}" if text else ""), value // 10**digits


def go_duration(nanoseconds: int) -> str:
    """A duration as Go's `time.Duration.String()` writes it: `4032h0m0s`, `1.5s`, `-2ns`."""
    size = abs(nanoseconds)
    if size == 0:
        return "0s"
    if size < _SECOND_NS:
        unit, digits = ("ns", 0) if size < 1000 else ("µs", 3) if size < 1_000_000 else ("ms", 6)  # noqa: PLR2004
        fraction, whole = _fraction(size, digits)
        text = f"{whole}{fraction}{unit}"
    else:
        fraction, seconds = _fraction(size, 9)
        minutes, hours = seconds // 60, seconds // 3600
        text = f"{seconds % 60}{fraction}s"
        if minutes:
            text = f"{minutes % 60}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return f"-{text}" if nanoseconds < 0 else text
