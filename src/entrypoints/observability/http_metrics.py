"""Requests counted and timed by route template, method and status: an app-level middleware.

It runs after the router (the route template is known: a label of bounded cardinality, never
the raw path) and around everything else of the route: the increment routes' lean layer, and
the errors raised by middleware inside it. Requests that no route serves (404 for an unknown
path, 405) never reach app-level middleware and are not counted here; the access log has them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from entrypoints.http.increment_route import answer_error
from entrypoints.http.middleware import ASGIApp, Message
from entrypoints.observability.buffered import BufferedCounter, BufferedHistogram
from entrypoints.observability.metrics import Metrics


class _Route:
    """The label children of one route template and method, made once."""

    __slots__ = ("by_status", "duration", "method", "metrics", "template")

    def __init__(self, metrics: Metrics, template: str, method: str) -> None:
        self.template = template
        self.method = method
        self.metrics = metrics
        self.duration: BufferedHistogram = metrics.buffered_histogram(
            metrics.request_duration.labels(template, method)
        )
        self.by_status: dict[int, BufferedCounter] = {}

    def count(self, status: int) -> None:
        counter = self.by_status.get(status)
        if counter is None:
            child = self.metrics.requests.labels(self.template, self.method, str(status))
            counter = self.by_status[status] = self.metrics.buffered_counter(child)
        counter.pending += 1


class RequestMetrics:
    """Litestar middleware (`DefineMiddleware(RequestMetrics, metrics=...)`); Litestar builds one
    per route, so its table of children stays small."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics
        self._routes: dict[tuple[str, str], _Route] = {}

    # Any: Litestar types these with its exact ASGI TypedDicts.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # none yet: the answer has not started

        # Not a coroutine function: it hands on the awaitable of `send` (a call per message
        # instead of a coroutine, as the request context's wrapper does).
        def send_noting_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)  # type: ignore[no-any-return]

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception as error:
            # An error raised by a middleware inside (a rate limit's 429) becomes its answer
            # here, from the app's exception handlers, so it is counted with its status; Litestar
            # would otherwise answer it outside every middleware, and this one would see only the
            # raise. Answered only when raised: a wrapping exception middleware would cost a call
            # level and a `send` wrapper on every request. After the answer started, Litestar's
            # outer handling reports it, as it does for any route.
            if status:
                raise
            await answer_error(error, scope, receive, send_noting_status)
        finally:
            key = (scope["path_template"], scope["method"])
            route = self._routes.get(key)
            if route is None:
                route = self._routes[key] = _Route(self._metrics, *key)
            route.duration.observe(time.perf_counter() - started)
            route.count(status or 500)  # 500: what the client gets if the answer never starts
