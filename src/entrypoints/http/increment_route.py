"""The lean layer of the increment routes: `POST /counter`, `POST /counters/{name}` and
`POST /namespaces/{namespace}/counters/{key}`.

Why: these are the service's hot routes, and the handler's own pipeline (request object,
signature model, dependency resolution, response object) costs about as much as the rest of the
request together. This layer is the innermost middleware of the two `@post` handlers, so every
request has already passed Litestar's router (path parameters parsed), CORS, and every app-level
middleware (rate limits, metrics, tracing) before it gets here. It runs the handler's guards,
then does only what an increment needs:

- the same domain service validates and increments;
- domain errors are raised into Litestar's own exception handling, set up here exactly as
  Litestar sets it up inside every route's middleware, so they are answered by the app's
  exception handlers and pass every middleware's `send` (one rendering for every route);
- the same msgspec Structs encode the answer, with the same headers.

It answers only what it can answer exactly like the handler, and hands everything else to the
handler's full pipeline before the store is called, so nothing is ever counted twice: a body
without Content-Length or larger than the limit (413 there), a body without a JSON Content-Type
(415 there), one that does not decode as an IncrementRequest with the handler's own strict
decoding (bodies.py: its 400 messages apply; the body already read is handed on), and every
request of a handler configured with something this layer does not do (hooks, response headers
or cookies, caching). The `@post` handlers stay the reference and the OpenAPI description;
COUNTER_FAST_PATH=false hands every request to them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final

import msgspec
from litestar import Request
from litestar import types as litestar_types
from litestar._asgi.utils import wrap_in_exception_handler
from litestar.handlers import HTTPRouteHandler

from domain.model import DEFAULT_KEY, DEFAULT_NAMESPACE, CounterId
from domain.services import CounterService
from entrypoints.http.bodies import InvalidBodyError, decode, is_json, strict_decoder
from entrypoints.http.dependencies import FAST_PATH_STATE_KEY, SERVICE_STATE_KEY
from entrypoints.http.middleware import ASGIApp, Message, Receive, Scope, Send
from entrypoints.http.schemas import REPLAYED_HEADER, IncrementRequest, counter_response

logger = logging.getLogger("counter.http")

_decoder = strict_decoder(IncrementRequest | None)  # the handler's own (bodies.StrictJSONRequest)
_encode = msgspec.json.Encoder().encode
_JSON_TYPE: Final = b"application/json"
_JSON: Final = (b"content-type", _JSON_TYPE)
_REPLAYED: Final = (REPLAYED_HEADER.lower().encode(), b"true")
_DIGITS: Final = 18  # of a Content-Length this layer reads; longer ones go to the handler
# A CounterId checks both of its names with a regular expression when it is made (0.6 us, the
# dearest step of this layer); it is a frozen value, so the ids of the counters in use are kept
# and shared. An invalid name raises every time: nothing is kept for it.
_counter_id = functools.lru_cache(maxsize=4096)(CounterId)


class _HandOn(Exception):  # noqa: N818 (a signal, not an error)
    """The handler's full pipeline answers this request (`reason`: why, for the debug log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Raise:
    """An ASGI app that raises `error`: wrapped as Litestar wraps a route, it is answered by the
    app's exception handlers exactly as if the handler had raised it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __call__(self, _scope: Scope, _receive: Receive, _send: Send) -> None:
        try:
            raise self.error
        finally:
            # The error's traceback holds this frame, and the frame holds `self`: without this,
            # every error answered here would leave a reference cycle (error, traceback, the
            # frames of the request and their locals) for the tuned, rarely run collector.
            del self.error


class IncrementRoute:
    """Route-level middleware of the increment handlers (`@post(..., middleware=[IncrementRoute])`).

    `app` is the handler's own pipeline. Litestar builds one instance per app and route, so what
    is read from the app on the first request (whether to answer, the guards, the body limit) is
    that app's.
    """

    def __init__(self, app: litestar_types.ASGIApp) -> None:
        # Litestar's ASGI types are exact TypedDicts; this layer builds plain messages.
        self.app: ASGIApp = app  # type: ignore[assignment]
        self._answer_here: bool | None = None
        self._guarded = False
        self._max_body_bytes = 0

    def _configure(self, scope: Scope) -> None:
        handler: HTTPRouteHandler = scope["route_handler"]
        self._max_body_bytes = handler.resolve_request_max_body_size() or 0
        self._guarded = bool(handler.resolve_guards())
        enabled = bool(scope["litestar_app"].state[FAST_PATH_STATE_KEY])
        self._answer_here = enabled and _plain(handler)
        if not self._answer_here:
            reason = "configured off" if not enabled else "the handler has hooks, headers or a cache"
            extra = {"route": scope["path"], "reason": reason}
            logger.info("increments answered by the handler", extra=extra)

    # Any: Litestar types these with its exact ASGI TypedDicts; this layer builds plain messages.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: C901, PLR0912
        # One frame for the whole answer: on this route every call level costs measurably.
        if self._answer_here is None:
            self._configure(scope)
        if not self._answer_here:
            await self.app(scope, receive, send)
            return
        if self._guarded:
            try:
                await scope["route_handler"].authorize_connection(Request(scope, receive, send))
            except Exception as error:  # noqa: BLE001 (answered by the app's exception handlers)
                await answer_error(error, scope, receive, send)
                return
        idempotency_key: str | None = None
        content_type: bytes | None = None
        length = -1
        chunked = False
        for header, value in scope["headers"]:
            if header == b"content-length":
                # Short digits only: int() of thousands of digits raises instead of answering.
                length = int(value) if len(value) <= _DIGITS and value.isdigit() else self._max_body_bytes + 1
            elif header == b"content-type":
                content_type = value if content_type is None else b""  # two: the handler decides
            elif header == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
            elif header == b"transfer-encoding":
                chunked = True
        if chunked or length > self._max_body_bytes:
            logger.debug("increment handed to its handler", extra={"reason": "body length"})
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive) if length > 0 else b""
        if body is None:  # the client left before sending its body: nothing to do
            return
        try:
            by = _amount(body, content_type)
        except _HandOn as hand_on:
            logger.debug("increment handed to its handler", extra={"reason": hand_on.reason})
            await self.app(scope, _replay(body, receive), send)
            return
        service: CounterService = scope["litestar_app"].state[SERVICE_STATE_KEY]
        params = scope["path_params"]
        try:
            # `/counter`: no parameters; `/counters/{name}`: a key of `default`.
            counter = _counter_id(
                params.get("namespace", DEFAULT_NAMESPACE),
                params.get("key") or params.get("name", DEFAULT_KEY),
            )
            result = await service.increment(counter, by, idempotency_key)
        except Exception as error:  # noqa: BLE001 (answered by the app's exception handlers)
            await answer_error(error, scope, receive, send)
            return
        body = _encode(counter_response(result.counter))
        headers = [_REPLAYED, _JSON] if result.replayed else [_JSON]
        headers.append((b"content-length", b"%d" % len(body)))
        headers.append((b"etag", b'"%d"' % result.counter.version))  # versions.etag, as bytes
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def answer_error(error: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `error` the way Litestar wraps a route's own app when middleware is around it, so
    that the answer comes from the app's exception handlers and passes every middleware's
    `send`, as the handler's own errors do."""
    await wrap_in_exception_handler(_Raise(error))(scope, receive, send)  # type: ignore[arg-type]


def _plain(handler: HTTPRouteHandler) -> bool:
    """True when the handler, on every layer that owns it, is configured with nothing but what
    this layer does too (guards, middleware around it, exception handlers, documentation)."""
    if handler.resolve_before_request() or handler.resolve_after_response():
        return False
    if handler.resolve_response_cookies():
        return False
    if any(not header.documentation_only for header in handler.resolve_response_headers()):
        return False
    layers: list[Any] = list(handler.ownership_layers)
    return not any(getattr(layer, "after_request", None) for layer in layers) and not (
        handler.cache or handler.background
    )


def _amount(body: bytes, content_type: bytes | None) -> int:
    """`by` of the body, decoded as the handler decodes it; _HandOn for what the handler refuses."""
    if not body:
        return 1  # no body: no Content-Type needed either
    if content_type != _JSON_TYPE and not (content_type and is_json(content_type.decode("latin-1"))):
        raise _HandOn("content type")
    try:
        data = decode(body, _decoder)
    except InvalidBodyError:
        raise _HandOn("body not strict JSON") from None
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
    """`receive` for the handler: the body already read, then the server's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
