"""CORS open to any origin, for the compatible APIs: public counters that any page may read,
with no credentials.

Litestar's CORSConfig is one per app (COUNTER_CORS_* for the native API), so these routes carry
a small route middleware of their own: its headers on every answer, and a preflight (`OPTIONS`
with `Access-Control-Request-Method`) answered 204 here. A plain `OPTIONS` goes on to the handler
Litestar adds, which lists the route's methods. When COUNTER_CORS_ALLOW_ORIGINS is set, the app's
CORS answers preflights first (for the origins it lists), before any route middleware runs.
"""

from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

ANY_ORIGIN = {"access-control-allow-origin": "*"}


class OpenCors(ASGIMiddleware):
    """`headers` on every answer (replacing any of the same names), `preflight` (with `headers`)
    on the 204 answer to a preflight."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, headers: dict[str, str], preflight: dict[str, str]) -> None:
        self.headers = {name.lower(): value for name, value in headers.items()}
        self.preflight = {**self.headers, **preflight}
        self._raw = [(name.encode(), value.encode()) for name, value in self.headers.items()]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "OPTIONS" and _preflight(scope):
            await ASGIResponse(status_code=204, headers=self.preflight)(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", []) if k.decode().lower() not in self.headers
                ]
                message = cast("Message", {**message, "headers": [*kept, *self._raw]})
            await send(message)

        await next_app(scope, receive, with_cors)


def _preflight(scope: Scope) -> bool:
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])
