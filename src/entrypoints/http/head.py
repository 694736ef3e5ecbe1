"""`HEAD` on every `GET` route: the `GET` handler's answer, its headers without its body.

Litestar 2 serves `HEAD` only from handlers that return no body, so each `GET` handler of the
API's controllers gets a twin for `HEAD` (`head_twin`): a copy with the same function, guards,
dependencies and layers, left out of the OpenAPI document, whose innermost layer drops the
body. It answers what the `GET` would, status and headers (`Content-Length` of the body it
would send, RFC 9110 9.3.2), errors included; the `GET` itself passes nothing more. The
handlers Litestar makes for the OpenAPI document and the docs serve both methods themselves
(`HeadRouter`). A rate limit's refusal of a `HEAD` is answered without its body too
(rate_limit.py): it comes from a middleware around the route."""

from __future__ import annotations

from copy import copy
from typing import Any

from litestar import Router
from litestar import types as litestar_types
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.routes import BaseRoute
from litestar.types import ControllerRouterHandler

from entrypoints.http.middleware import ASGIApp, Message, Send


def without_body(send: Send) -> Send:
    """`send` that passes the answer's start and ends it with an empty body."""

    async def send_headers(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return send_headers


class WithoutBody:
    """Route middleware of the handlers that serve `HEAD`: the body of a `HEAD` is dropped."""

    def __init__(self, app: litestar_types.ASGIApp) -> None:
        self.app: ASGIApp = app  # type: ignore[assignment]  # Litestar's exact ASGI TypedDicts

    # Any: Litestar types these with its exact ASGI TypedDicts; this layer passes plain messages.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, without_body(send) if scope["method"] == "HEAD" else send)


def head_twin(handler: HTTPRouteHandler) -> HTTPRouteHandler:
    """A `HEAD` handler answering like `handler`, a `GET` handler (a shallow copy, as Litestar
    copies a handler it registers)."""
    twin = copy(handler)
    twin.http_methods = {HttpMethod.HEAD}
    twin.include_in_schema = False
    twin.middleware = [WithoutBody, *(handler.middleware or ())]
    twin.name = None
    return twin


def serving_head(handler: HTTPRouteHandler) -> HTTPRouteHandler:
    """`handler`, a `GET` handler, registered for `GET` and `HEAD` at once (a copy): for a
    handler outside the controllers, so that the `OPTIONS` Litestar adds lists both."""
    both = copy(handler)
    both.http_methods = {HttpMethod.GET, HttpMethod.HEAD}
    both.middleware = [WithoutBody, *(handler.middleware or ())]
    return both


class HeadRouter(Router):
    """A router whose `GET` handlers, registered one by one, serve `HEAD` too: the router of
    the OpenAPI document and the docs (`OpenAPIConfig(openapi_router=...)`), whose handlers
    Litestar makes. Each is registered for both methods at once (not with a twin), so that the
    `OPTIONS` handler Litestar adds lists both (litestar-org/litestar#4169)."""

    def register(self, value: ControllerRouterHandler) -> list[BaseRoute]:
        if isinstance(value, HTTPRouteHandler) and value.http_methods == {HttpMethod.GET}:
            value = serving_head(value)
        return super().register(value)
