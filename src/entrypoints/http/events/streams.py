"""Server-sent event streams of counters: the open streams of one process, their limits, and
the one function that serves a stream (`serve_events`), whatever its data looks like.

A stream first subscribes to the store's change signal, then reads the counter: a change made
between the two is then both in the read and among the signals, and `domain.changes.is_news`
drops the copy. Each event's id is the counter's version, so `Last-Event-ID` says what the
client saw last (`domain.changes.missed`).

The slot of a stream is taken before anything else and given back exactly once, whichever way
the stream ends: the client goes away (Litestar's streaming response listens for the
disconnect and cancels the stream), the idle timeout, a full buffer, a failed read, the server
stopping, or a response that never started streaming (its background task). Giving it back
never waits, so that it also works inside a cancelled stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.response import Stream
from litestar.response.sse import ServerSentEventMessage

from domain.changes import ChangesEndedError, ChangeSubscription, CounterChanges, is_news, missed
from domain.model import Counter, CounterId
from entrypoints.http.errors import TooManyStreamsError

logger = logging.getLogger("counter.events")

EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING = ServerSentEventMessage(data=None, comment="ping").encode()
STOPPING = "the server stops"


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What streams may cost one process (the COUNTER_EVENTS_* settings)."""

    max_streams: int
    idle_timeout_seconds: float
    heartbeat_seconds: float
    buffer_events: int
    retry_ms: int = 2000  # how long EventSource waits before it reconnects


class _Slot:
    """One open stream's place among the process's streams, and its subscription."""

    __slots__ = ("_streams", "subscription")

    def __init__(self, streams: EventStreams) -> None:
        self._streams: EventStreams | None = streams
        self.subscription: ChangeSubscription | None = None

    def release(self) -> None:
        streams, self._streams = self._streams, None
        if streams is None:
            return
        if self.subscription is not None:
            self.subscription.close()
        streams.released(self)


class EventStreams:
    """The open streams of one process. `changes` is set once the store is open; `gauge` is told
    how many streams are open whenever that changes."""

    def __init__(self, limits: StreamLimits, gauge: Callable[[int], None]) -> None:
        self.limits = limits
        self.changes: CounterChanges | None = None
        self._gauge = gauge
        self._open: set[_Slot] = set()
        self._stopping = False

    @property
    def open(self) -> int:
        return len(self._open)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self, changes: CounterChanges) -> None:
        self.changes = changes
        self._stopping = False

    def take(self) -> _Slot:
        if self._stopping:
            raise TooManyStreamsError("the server is stopping; connect again", retry_after=1)
        if len(self._open) >= self.limits.max_streams:
            raise TooManyStreamsError(
                f"this server process has {self.limits.max_streams} event streams open, its most;"
                " connect again later",
                retry_after=max(1, round(self.limits.retry_ms / 1000)),
            )
        slot = _Slot(self)
        self._open.add(slot)
        self._gauge(len(self._open))
        return slot

    def released(self, slot: _Slot) -> None:
        self._open.discard(slot)
        self._gauge(len(self._open))

    def stop(self) -> None:
        """End every open stream now (cleanly: each sends its end), and open no new one. Called
        when the server begins to stop, so that streams do not hold its shutdown."""
        if self._stopping:
            return
        self._stopping = True
        for slot in list(self._open):
            if slot.subscription is not None:
                slot.subscription.end(STOPPING)


def encode_event(event_id: int, data: str) -> bytes:
    return ServerSentEventMessage(data=data, id=event_id).encode()


async def serve_events(
    streams: EventStreams,
    counter: CounterId,
    read: Callable[[CounterId], Awaitable[Counter]],
    render: Callable[[Counter], str],
    last_event_id: str | None = None,
    *,
    headers_only: bool = False,
) -> Stream:
    """A streaming response of `counter`'s states, each as the `data` that `render` makes of it
    and the counter's version as its id: the current state first (unless `last_event_id` is
    still current), then each change. `read` reads the counter (the service's `get`); what it
    raises (a store that is down) is raised here, before the response begins, so that the error
    table answers it. Past the process's limit of streams, raises TooManyStreamsError.
    `last_event_id` is the `Last-Event-ID` header as the route took it (`LastEventId`: digits).
    `headers_only` (a HEAD): the same checks and headers, and a body that ends at once."""
    changes = streams.changes
    if changes is None:
        raise RuntimeError("the event streams have not been started")
    slot = streams.take()
    try:
        subscription = await changes.subscribe(counter, streams.limits.buffer_events)
        slot.subscription = subscription
        current = await read(counter)
        if streams.stopping:  # began to stop while this stream was being opened
            subscription.end(STOPPING)
    except BaseException:
        slot.release()
        raise
    if headers_only:
        slot.release()
        body: AsyncIterator[bytes] = _nothing()
    else:
        resumed = None if last_event_id is None else int(last_event_id)
        body = _events(streams.limits, slot, subscription, current, render=render, last_event_id=resumed)
    return Stream(
        body,
        media_type=EVENT_STREAM,
        headers=STREAM_HEADERS,
        background=BackgroundTask(slot.release),  # when the stream never started, or ended
    )


async def _events(
    limits: StreamLimits,
    slot: _Slot,
    subscription: ChangeSubscription,
    current: Counter,
    *,
    render: Callable[[Counter], str],
    last_event_id: int | None,
) -> AsyncIterator[bytes]:
    try:
        hint = ServerSentEventMessage(data=None, retry=limits.retry_ms).encode()
        last = last_event_id
        if missed(last_event_id, current):
            hint += encode_event(current.version, render(current))
            last = current.version
        yield hint
        idle_until = time.monotonic() + limits.idle_timeout_seconds
        while True:
            left = idle_until - time.monotonic()
            if left <= 0:
                return  # idle: the client reconnects, with its Last-Event-ID
            try:
                state = await subscription.next(min(limits.heartbeat_seconds, left))
            except ChangesEndedError as ended:
                _log_end(current.id, ended.reason)
                return
            if state is None:
                if time.monotonic() < idle_until:
                    yield PING
            elif is_news(last, state):
                last = state.version
                idle_until = time.monotonic() + limits.idle_timeout_seconds
                yield encode_event(state.version, render(state))
    finally:
        slot.release()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def _log_end(counter: CounterId, reason: str) -> None:
    level = logging.DEBUG if reason == STOPPING else logging.INFO
    logger.log(level, "event stream ended", extra={"counter": str(counter), "reason": reason})


def provide_event_streams(state: State) -> EventStreams:
    """The `event_streams` dependency of every route that serves a stream (app.py)."""
    streams: EventStreams = state[EVENTS_STATE_KEY]
    return streams


EVENTS_STATE_KEY = "event_streams"
