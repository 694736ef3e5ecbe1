"""CountAPI's answers: plain JSON bodies (not problem details: its clients read `{"value": ...}`
and `{"error": ...}`), the `X-Path` header, JSONP that carries the status in the body, and CORS
open to any origin (compat/cors.py)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from domain.model import CounterId
from entrypoints.http.compat.cors import ANY_ORIGIN, OpenCors
from entrypoints.http.compat.jsonp import MALFORMED_CALLBACK, json_answer, jsonp_answer, valid_callback
from entrypoints.http.countapi.names import x_path

CORS_HEADERS = {**ANY_ORIGIN, "access-control-expose-headers": "X-Path"}
PREFLIGHT_HEADERS = {
    "access-control-allow-methods": "GET, HEAD, OPTIONS",
    "access-control-allow-headers": "*",
    "access-control-max-age": "86400",
}


class BadRequestError(Exception):
    """A request CountAPI refuses with 400 `{"error": message}`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def answer(
    request: Request[Any, Any, Any], status: int, body: dict[str, Any], counter: CounterId | None = None
) -> Response[bytes]:
    """`body` as JSON with `status`; with `?callback=name`, JSONP that always answers 200 and
    carries the real status in the body, as CountAPI's did."""
    headers = {} if counter is None else {"X-Path": x_path(counter)}
    callback = request.query_params.get("callback")
    if callback is None:
        return json_answer(status, body, headers)
    if not valid_callback(callback):
        return json_answer(400, {"error": MALFORMED_CALLBACK})
    return jsonp_answer(callback, {**body, "status": status}, headers)


def countapi_cors() -> OpenCors:
    return OpenCors(CORS_HEADERS, PREFLIGHT_HEADERS)
