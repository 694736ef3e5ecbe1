"""`GET .../events`: a counter's live updates as server-sent events, under the default
counter's path, a named counter's and a namespaced counter's: one handler on a base controller,
the counter chosen by the badge routes' `target` dependency.

Each event is `id: <version>` and `data: {"namespace", "key", "value", "version"}` (the default
event type, so `EventSource.onmessage` gets it); a deleted counter is sent as value 0, version
0. The stream passes the app's one pipeline like any GET: the rate limits, the metrics, CORS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter
from litestar.response import Stream

from domain.model import INT64_MAX, INT64_MIN, Counter
from domain.services import CounterService
from entrypoints.http.badges.targets import BadgeTarget, on_counter_paths, operation_id_of
from entrypoints.http.controllers import STORE_ERRORS, ExactAllowController, problem
from entrypoints.http.events.streams import (
    EVENT_STREAM,
    STREAM_HEADERS,
    EventStreams,
    serve_events,
)
from entrypoints.http.openapi import DocumentedOperation

VERSION_PATTERN = r"^[0-9]{1,18}$"  # a version: a whole number, below 2**63


class CounterEvent(msgspec.Struct):
    """The `data` of one event: the counter's state."""

    namespace: str
    key: str
    value: Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
    version: Annotated[int, msgspec.Meta(ge=0)]


def render_counter(counter: Counter) -> str:
    return msgspec.json.encode(
        CounterEvent(counter.namespace, counter.key, counter.count, counter.version)
    ).decode()


LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        pattern=VERSION_PATTERN,
        description=(
            "The id of the last event received (EventSource sends it when it reconnects), a"
            " version: the current state is sent at once unless the counter is still at it."
        ),
    ),
]
_DESCRIPTION = (
    "The counter's live updates as server-sent events (`text/event-stream`): `retry: <ms>`, then"
    ' the current state as `id: <version>` and `data: {"namespace", "key", "value", "version"}`,'
    " then each change from any process or replica, in order, never the same version twice. A"
    " deleted counter is sent with value 0 and version 0. Fast bursts may arrive as their last"
    " state only, where the store's signal coalesces them. `: ping` comments keep the connection"
    " open; the stream ends after a while without a change, and the client reconnects with"
    " `Last-Event-ID`."
)
EVENT_ERRORS = {
    **STORE_ERRORS,
    400: problem("Invalid counter name, or a `Last-Event-ID` that is not a version (a whole number)."),
    503: problem(
        "The store is unavailable (`...:store-unavailable`), or this server process has as many"
        " streams open as it may (`...:too-many-streams`). Retry after `Retry-After` seconds."
    ),
}


class _Events(ExactAllowController):
    """The live updates of one kind of counter path; each subclass says which counter (the
    `target` dependency) and how its operation id begins (`opt`)."""

    @get(
        "/events",
        operation_id=operation_id_of("Events"),
        summary="Live updates of a counter (server-sent events)",
        description=_DESCRIPTION,
        responses=EVENT_ERRORS,
        operation_class=DocumentedOperation,
        media_type=EVENT_STREAM,
        response_headers=[
            ResponseHeader(name=name, value=value, documentation_only=True)
            for name, value in STREAM_HEADERS.items()
        ],
        tags=["live updates"],
    )
    async def events(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        event_streams: NamedDependency[EventStreams],
        target: NamedDependency[BadgeTarget],
        last_event_id: LastEventId = None,
    ) -> Stream:
        return await serve_events(
            event_streams,
            target.counter,
            counter_service.get,
            render_counter,
            last_event_id,
            headers_only=request.method == "HEAD",
        )


def _dependencies(target: Callable[..., BadgeTarget]) -> dict[str, Provide]:
    return {
        "target": Provide(target, sync_to_thread=False),
    }


EVENT_CONTROLLERS = on_counter_paths(_Events, "Events", _dependencies)
