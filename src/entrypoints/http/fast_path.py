"""The increment fast path: `POST /counter` and `POST /counters/{name}` in plain ASGI.

Why: these two routes are the service's hot path, and Litestar's per-request pipeline (request
object, signature model, dependency resolution, response object) costs about as much as the rest
of the request together (README, Performance). This path does only what an increment needs, and
gives the same answers as the framework's handlers in controllers.py, which stay the reference
and the OpenAPI documentation:

- the same domain service does the validation and the increment;
- the same table (errors.problem_for) answers for every domain error;
- the same msgspec Structs encode the answers, with the same headers.

It serves only what it can answer exactly like the framework; everything else goes on to
Litestar untouched: other routes and methods, a path the router would normalise (`/counter/`),
a body without Content-Length or larger than COUNTER_MAX_BODY_BYTES (413 there), and a body
that does not decode strictly as an IncrementRequest (the framework's lax decoding and its
400 messages apply; the body read here is handed on). Nothing is handed on once the store has
been called, so a request is never counted twice. COUNTER_FAST_PATH=false turns it off.

Mind: a middleware, guard or hook added to the Litestar app does not see the requests served
here. Put it in front of this path in app.py (as RequestContextMiddleware is), or add it here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from domain.model import DEFAULT_COUNTER
from domain.services import CounterService
from entrypoints.http.controllers import REPLAYED_HEADER
from entrypoints.http.errors import PROBLEM_JSON, problem_for
from entrypoints.http.middleware import ASGIApp, Message, Receive, Scope, Send
from entrypoints.http.schemas import IncrementRequest, counter_response

DEFAULT_PATH: Final = "/counter"
NAMED_PREFIX: Final = "/counters/"

_decode_body = msgspec.json.Decoder(IncrementRequest | None).decode  # strict: what it refuses goes on
_encode = msgspec.json.Encoder().encode
_JSON: Final = (b"content-type", b"application/json")
_PROBLEM: Final = (b"content-type", PROBLEM_JSON.encode())
_DIGITS: Final = 18  # of a Content-Length this path reads; longer ones go to the framework
_REPLAYED: Final = (REPLAYED_HEADER.lower().encode(), b"true")


class _HandOn(Exception):  # noqa: N818 (a signal, not an error)
    """The framework answers this request."""


class IncrementFastPath:
    """Plain ASGI in front of the framework app (`app`); `service` gives the counter service
    once the app's lifespan has opened the store."""

    def __init__(self, app: ASGIApp, service: Callable[[], CounterService], *, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = _counter_name(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        idempotency_key: str | None = None
        length = -1
        for header, value in scope["headers"]:
            if header == b"content-length":
                # Short digits only: int() of thousands of digits raises instead of answering.
                length = int(value) if len(value) <= _DIGITS and value.isdigit() else self.max_body_bytes + 1
            elif header == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
            elif header == b"transfer-encoding":
                length = self.max_body_bytes + 1
        if length > self.max_body_bytes:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive) if length > 0 else b""
        if body is None:  # the client left before sending its body: nothing to do
            return
        try:
            by = _amount(body)
        except _HandOn:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            result = await self.service().increment(name, by, idempotency_key)
        except Exception as exc:  # noqa: BLE001 (the one error table answers, as for the framework)
            problem = problem_for(exc, scope["path"])
            headers = [
                _PROBLEM,
                *((k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()),
            ]
            await _respond(send, problem.status, headers, _encode(problem.body))
            return
        headers = [_REPLAYED, _JSON] if result.replayed else [_JSON]
        await _respond(send, 200, headers, _encode(counter_response(result.counter)))


def _counter_name(scope: Scope) -> str | None:
    path: str = scope["path"]
    if path == DEFAULT_PATH:
        return DEFAULT_COUNTER
    if path.startswith(NAMED_PREFIX):
        name = path[len(NAMED_PREFIX) :]
        if name and "/" not in name:
            return name  # validated by the domain, like the framework's path parameter
    return None


def _amount(body: bytes) -> int:
    if not body:
        return 1
    try:
        data = _decode_body(body)
    except msgspec.DecodeError:
        raise _HandOn from None
    return 1 if data is None else data.by


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the framework: the body already read, then the server's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
