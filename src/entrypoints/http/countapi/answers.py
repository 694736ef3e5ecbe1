"""CountAPI's answers: plain JSON bodies (not problem details: its clients read `{"value": ...}`
and `{"error": ...}`), the `X-Path` header, JSONP, and CORS open to any origin.

CORS: Litestar's CORSConfig is one per app (COUNTER_CORS_* for the native API), so these routes
carry a small route middleware of their own: `Access-Control-Allow-Origin: *` (no credentials)
on every answer, and a preflight answered 204 here.
"""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain.model import CounterId
from entrypoints.http.countapi.names import x_path

CALLBACK_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]{0,63}")
JSON_TYPE = "application/json; charset=utf-8"
JSONP_TYPE = "application/javascript; charset=utf-8"
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "X-Path",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
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
        return Response(msgspec.json.encode(body), status_code=status, media_type=JSON_TYPE, headers=headers)
    if CALLBACK_RE.fullmatch(callback) is None:
        return Response(
            msgspec.json.encode({"error": "Malformed callback"}), status_code=400, media_type=JSON_TYPE
        )
    script = f"{callback}(".encode() + msgspec.json.encode({**body, "status": status}) + b");"
    return Response(script, status_code=200, media_type=JSONP_TYPE, headers=headers)


class OpenCors(ASGIMiddleware):
    """Any origin may read these answers (they are public counters); nobody sends credentials."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "OPTIONS" and _preflight(scope):
            await ASGIResponse(status_code=204, headers=PREFLIGHT_HEADERS)(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", []) if k.decode().lower() not in CORS_HEADERS
                ]
                message = cast("Message", {**message, "headers": [*kept, *_raw(CORS_HEADERS)]})
            await send(message)

        await next_app(scope, receive, with_cors)


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in headers.items()]


def _preflight(scope: Scope) -> bool:
    # A plain OPTIONS goes on to the handler Litestar adds, which lists the route's methods.
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])
