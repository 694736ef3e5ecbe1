"""Abacus's live updates, `GET /abacus/stream/{namespace}/{key}`: the native API's event streams
(same limits, same change signal of the store, same slot freed when the client goes), with
Abacus's `data: {"value":N}` as each event's data."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import Stream

from domain.model import Counter, CounterId
from domain.services import CounterService
from entrypoints.http.abacus.docs import NAME_ERROR, TAG
from entrypoints.http.abacus.names import COUNTER
from entrypoints.http.abacus.schemas import ValueBody
from entrypoints.http.events import EventStreams, serve_events
from entrypoints.http.events.routes import EVENT_ERRORS, VERSION_PATTERN
from entrypoints.http.events.streams import EVENT_STREAM
from entrypoints.http.openapi import DocumentedOperation

# Abacus takes no Last-Event-ID; an EventSource sends back the last id it got (a version), which
# resumes the stream. Anything else is no version: the stream starts with the current value, and
# no refusal can come but Abacus's own, for a name.
VERSION_RE = re.compile(VERSION_PATTERN)
AnyLastEventId = Annotated[
    str | None,
    HeaderParameter(name="Last-Event-ID", required=False, description="The last event id seen (a version)."),
]


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
    responses={**EVENT_ERRORS, 400: NAME_ERROR},
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
    last_event_id: AnyLastEventId = None,
) -> Stream:
    return await serve_events(
        event_streams,
        counter,
        counter_service.get,
        render_value,
        last_event_id if last_event_id is not None and VERSION_RE.fullmatch(last_event_id) else None,
        headers_only=request.method == "HEAD",
    )


STREAM_ROUTES = [stream]
