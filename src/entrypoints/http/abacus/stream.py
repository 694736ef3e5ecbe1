"""Abacus's live updates, `GET /abacus/stream/{namespace}/{key}`: the native API's event streams
(same limits, same change signal of the store, same slot freed when the client goes), with
Abacus's `data: {"value":N}` as each event's data."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Stream

from domain.model import Counter, CounterId
from domain.services import CounterService
from entrypoints.http.abacus.docs import TAG
from entrypoints.http.abacus.names import COUNTER
from entrypoints.http.abacus.schemas import ValueBody
from entrypoints.http.events import EventStreams, LastEventId, serve_events
from entrypoints.http.events.routes import EVENT_ERRORS
from entrypoints.http.events.streams import EVENT_STREAM
from entrypoints.http.openapi import DocumentedOperation


def render_value(counter: Counter) -> str:
    return msgspec.json.encode(ValueBody(counter.count)).decode()


@get(
    "/stream/{namespace:str}/{key:str}",
    operation_id="abacusStream",
    summary="Abacus: live updates of a counter (server-sent events)",
    description=(
        "The current value, then one event per change from any worker or replica, each"
        ' `data: {"value":N}` as Abacus sends it; the `id:` of each event is the counter\'s'
        " version (`Last-Event-ID` resumes). A missing or deleted counter is sent as value 0."
    ),
    responses=EVENT_ERRORS,
    operation_class=DocumentedOperation,
    media_type=EVENT_STREAM,
    dependencies=COUNTER,
    tags=[TAG],
)
async def stream(
    request: Request[Any, Any, Any],
    counter_service: NamedDependency[CounterService],
    event_streams: NamedDependency[EventStreams],
    counter: NamedDependency[CounterId],
    last_event_id: LastEventId = None,
) -> Stream:
    return await serve_events(
        event_streams,
        counter,
        counter_service.get,
        render_value,
        last_event_id,
        headers_only=request.method == "HEAD",
    )


STREAM_ROUTES = [stream]
