"""The lean layer of the increment routes: it answers exactly like the handlers' full pipeline,
inside Litestar's router and middleware, and hands on to the handler every request it does not
serve, before the store is touched."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from entrypoints.http.middleware import ASGIApp, Message, Receive, Scope, Send
from tests.unit.conftest import make_app, make_client

LIMIT = 4096  # the default: room for the deeply nested bodies
ORIGIN = "https://pages.example"
JSON = {"content-type": "application/json"}
DEEP = 2000  # brackets: more nesting than Python's recursion limit, under 4 KiB

# Requests whose answers the two paths must agree on, byte for byte (timestamps aside).
SAME_ANSWERS: list[tuple[str, bytes, dict[str, str]]] = [
    ("/counter", b"", {}),
    ("/counter", b"null", JSON),
    ("/counter", b"{}", JSON),
    ("/counter", b'{"by": 2}', JSON),
    ("/counter", b'{"by": -3}', JSON),
    ("/counter", b'{"b\\u0079": 2}', JSON),  # one key, escaped: taken
    ("/counter", b'{"by": 1.0}', JSON),  # strict: a float is not an integer
    ("/counter", b'{"by": 1e0}', JSON),
    ("/counter", b'{"by": "1"}', JSON),
    ("/counter", b'{"by": 1, "by": 2}', JSON),  # a key twice
    ("/counter", b'{"by": 2, "b\\u0079": 2}', JSON),  # the same key twice, once escaped
    ("/counter", b'{"by":2,"by":2,"by":2}', JSON),
    ("/counter", b" ", JSON),
    ("/counter", b'{"by": "one"}', JSON),
    ("/counter", b'{"by": true}', JSON),
    ("/counter", b"{not json", JSON),
    ("/counter", b"[1]", JSON),
    ("/counter", b'"x"', JSON),
    ("/counter", b'{"step": 1}', JSON),
    ("/counter", b"[" * DEEP + b"]" * DEEP, JSON),  # was a RecursionError (500) on the handler
    ("/counter", b'{"by":' + b"[" * DEEP + b"]" * DEEP + b"}", JSON),
    ("/counter", b'{"x":' + b"[" * DEEP + b"]" * DEEP + b"}", JSON),
    ("/counter", b'{"by": 0}', JSON),
    ("/counter", b'{"by": 9223372036854775807}', JSON),  # 409: the counter is already above 0
    ("/counter", b'{"by": -9223372036854775808}', JSON),
    ("/counter", b'{"by": -9223372036854775808}', JSON),  # 409 the other way
    ("/counter", b'{"by": 9223372036854775808}', JSON),
    ("/counter", b'{"by": 1}' + b" " * LIMIT, JSON),
    # Content-Type: application/json, with any parameters, and only that, when there is a body.
    ("/counter", b'{"by": 1}', {"content-type": "application/json; charset=utf-8"}),
    ("/counter", b'{"by": 1}', {"content-type": "Application/JSON;charset=UTF-8"}),
    ("/counter", b'{"by": 1}', {"content-type": "text/plain"}),
    ("/counter", b'{"by": 1}', {"content-type": "application/x-www-form-urlencoded"}),
    ("/counter", b'{"by": 1}', {"content-type": "application/problem+json"}),
    ("/counter", b'{"by": 1}', {"content-type": "application/jsonl"}),
    ("/counter", b'{"by": 1}', {}),
    ("/counter", b"", {"content-type": "text/plain"}),  # no body: nothing to declare
    ("/counter/", b"", {}),
    ("/counters/", b"", {}),
    ("/counters/a/b", b"", {}),
    ("/counters/a.b-c_d", b"", {}),
    ("/counters/-x", b"", {}),
    ("/counters/" + "x" * 65, b"", {}),
    ("/counters/k", b"", {"idempotency-key": "key-1"}),
    ("/counters/k", b"", {"idempotency-key": "key-1"}),
    ("/counters/k", b"", {"idempotency-key": "key-1 "}),  # the same key: spaces around are not in it
    ("/counters/k", b"", {"idempotency-key": "\tkey-1"}),
    ("/counters/k", b'{"by": 3}', {"idempotency-key": "key-1", **JSON}),
    ("/counters/k", b'{"by": 3}', {"idempotency-key": " key-2 ", **JSON}),
    ("/counters/k", b'{"by": 3}', {"idempotency-key": "key-2", **JSON}),
    ("/counters/k", b"", {"idempotency-key": ""}),
    ("/counters/k", b"", {"idempotency-key": "  "}),
    ("/counters/k", b"", {"idempotency-key": "x" * 256}),
    ("/counters/o", b"", {"origin": ORIGIN}),
    ("/counters/o", b'{"by": 2}', {"origin": "https://elsewhere.example", **JSON}),
    ("/counters/o", b'{"by": 2.0}', {"origin": ORIGIN, **JSON}),  # a 400, with CORS
    ("/counters/o", b'{"by": 9223372036854775807}', {"origin": ORIGIN, **JSON}),  # a 409, with CORS
    ("/counters/g", b"", {"x-deny": "yes"}),  # the guard refuses
    ("/counters/g", b"", {"x-deny": "yes", "origin": ORIGIN}),
]
_VARYING = re.compile(rb'"(created|updated)_at":"[^"]*"')


class Stamp:
    """An app-level middleware, as a maintainer adds one: it stamps every response it sees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-stamp", b"seen")]
            await send(message)

        await self.app(scope, receive, stamped)


def deny_on_header(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """An app-level guard: refuses requests that carry `x-deny`."""
    if "x-deny" in connection.headers:
        raise NotAuthorizedException("denied by the guard")


def configured() -> dict[str, Any]:
    return {
        "middleware": [Stamp],
        "guards": [deny_on_header],
        "cors_config": CORSConfig(allow_origins=[ORIGIN]),
    }


async def test_the_lean_layer_answers_like_the_handler() -> None:
    async with (
        make_client(InMemoryCounterRepository(), litestar=configured(), max_body_bytes=LIMIT) as lean,
        make_client(
            InMemoryCounterRepository(), litestar=configured(), max_body_bytes=LIMIT, fast_path=False
        ) as handler,
    ):
        for path, body, headers in SAME_ANSWERS:
            answers = []
            for client in (lean, handler):
                response = await client.post(path, content=body, headers=headers)
                kept = {k: v for k, v in response.headers.items() if k not in {"date", "x-request-id"}}
                if "allow" in kept:  # Litestar lists the methods in no fixed order
                    kept["allow"] = ", ".join(sorted(kept["allow"].split(", ")))
                answers.append((response.status_code, kept, _VARYING.sub(b"", response.content)))
            assert answers[0] == answers[1], (path, body, headers)
        counts = [
            {c["name"]: c["count"] for c in (await client.get("/counters")).json()["counters"]}
            for client in (lean, handler)
        ]
        assert counts[0] == counts[1]
        assert counts[0].keys() == {"default", "a.b-c_d", "k", "o"}


@pytest.mark.parametrize("path", ["/counter", "/counters/x"])
async def test_middleware_guards_cors_and_rate_limits_see_the_increment_routes(path: str) -> None:
    store = InMemoryCounterRepository()
    options = {**configured(), "middleware": [Stamp, RateLimitConfig(rate_limit=("minute", 3)).middleware]}
    async with make_client(store, litestar=options) as client:
        counted = await client.post(path, headers={"origin": ORIGIN})
        assert counted.status_code == 200
        assert counted.headers["x-stamp"] == "seen"
        assert counted.headers["access-control-allow-origin"] == ORIGIN
        assert "ratelimit-remaining" in counted.headers
        refused = await client.post(path, headers={"x-deny": "1"})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "denied by the guard"
        assert refused.headers["x-stamp"] == "seen"  # the error passed the middleware too
        overflow = await client.post(path, json={"by": 2**63 - 1})
        assert overflow.status_code == 409
        assert overflow.headers["x-stamp"] == "seen"
        limited = await client.post(path)
        assert limited.status_code == 429
        assert limited.headers["ratelimit-remaining"] == "0"
    name = "default" if path == "/counter" else "x"
    assert (
        await store.get(CounterId.default(name))
    ).count == 1  # refused, overflowing and limited: none counted


def handed_on(records: list[logging.LogRecord]) -> list[str]:
    return [r.reason for r in records if r.getMessage() == "increment handed to its handler"]  # type: ignore[attr-defined]


async def test_it_serves_increments_itself(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryCounterRepository()
    caplog.set_level(logging.DEBUG, logger="counter.http")
    async with make_client(store, max_body_bytes=LIMIT) as client:
        assert (await client.post("/counter")).json()["count"] == 1
        assert (await client.post("/counters/n", json={"by": 5})).json()["count"] == 5
        key = {"idempotency-key": "k"}
        first, again = (
            await client.post("/counters/n", headers=key),
            await client.post("/counters/n", headers=key),
        )
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert handed_on(caplog.records) == []
    assert (await store.get(CounterId.default("n"))).count == 6


@pytest.mark.parametrize(
    ("body", "headers", "reason", "status"),
    [
        (b" ", JSON, "body not strict JSON", 400),  # the handler's own message
        (b'{"by": 1.0}', JSON, "body not strict JSON", 400),
        (b'{"step": 1}', JSON, "body not strict JSON", 400),
        (b'{"by": 1, "by": 1}', JSON, "body not strict JSON", 400),  # the careful check, there too
        (b'{"by": 1}', {}, "content type", 415),
        (b'{"by": 1}', {"content-type": "text/plain"}, "content type", 415),
        (b"x" * (LIMIT + 1), JSON, "body length", 413),
        (b'{"by": 2}', {"transfer-encoding": "chunked", **JSON}, "body length", 200),
    ],
)
async def test_it_hands_on_what_it_does_not_serve_with_the_whole_body(
    caplog: pytest.LogCaptureFixture, body: bytes, headers: dict[str, str], reason: str, status: int
) -> None:
    store = InMemoryCounterRepository()
    caplog.set_level(logging.DEBUG, logger="counter.http")
    async with make_client(store, max_body_bytes=LIMIT) as client:
        response = await client.post("/counters/h", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert handed_on(caplog.records) == [reason]
    # Counted once, by the handler, with the body it was handed whole.
    expected = {200: 2 if b'"by": 2' in body else 1}.get(status, 0)
    assert (await store.get(CounterId.default("h"))).count == expected


async def test_a_handler_with_hooks_answers_every_request_itself(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def before(request: Any) -> None:
        seen.append(request.url.path)

    caplog.set_level(logging.INFO, logger="counter.http")
    async with make_client(InMemoryCounterRepository(), litestar={"before_request": before}) as client:
        assert (await client.post("/counters/b")).json()["count"] == 1
        assert (await client.post("/counter")).json()["count"] == 1
    assert seen == ["/counters/b", "/counter"]
    reasons = [r.reason for r in caplog.records if r.getMessage() == "increments answered by the handler"]  # type: ignore[attr-defined]
    assert reasons == ["the handler has hooks, headers or a cache"] * 2


def post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    """The scope a server gives the app for `POST path`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def answer_of(app: Any, scope: Scope, messages: list[Message]) -> list[Message]:
    """What the app sends for `scope` when the client sends `messages`, then goes away; the
    app's lifespan runs around it (the store is open)."""

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with AsyncTestClient(app=app):
        await app(scope, receive, send)
    return sent


async def test_a_client_gone_before_its_body_counts_nothing() -> None:
    store = InMemoryCounterRepository()
    scope = post_scope("/counter", [(b"content-length", b"8")])
    assert await answer_of(make_app(store), scope, []) == []
    assert (await store.get(CounterId.default("default"))).count == 0


def test_the_increment_handlers_resolve_the_apps_exception_handlers_once() -> None:
    from litestar.handlers import HTTPRouteHandler
    from litestar.routes import HTTPRoute

    from entrypoints.http.controllers import IncrementHandler
    from entrypoints.http.errors import EXCEPTION_HANDLERS

    app = make_app(InMemoryCounterRepository())
    handlers = {
        route.path: handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if isinstance(handler, IncrementHandler)
    }
    assert handlers.keys() == {
        "/counter",
        "/counters/{name:str}",
        "/namespaces/{namespace:str}/counters/{key:str}",
    }
    for handler in handlers.values():
        first = handler.resolve_exception_handlers()
        assert first is handler.resolve_exception_handlers()
        assert first == HTTPRouteHandler.resolve_exception_handlers(handler) == EXCEPTION_HANDLERS


async def test_a_client_gone_mid_body_on_the_handler_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryCounterRepository()
    scope = post_scope("/counters/gone", [(b"content-length", b"9"), (b"content-type", b"application/json")])
    caplog.set_level(logging.INFO)
    sent = await answer_of(
        make_app(store, fast_path=False),
        scope,
        [{"type": "http.request", "body": b'{"by"', "more_body": True}],
    )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sent[0]["status"] == 400
    assert (await store.get(CounterId.default("gone"))).count == 0
