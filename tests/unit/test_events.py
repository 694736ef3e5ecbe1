"""Live updates over the memory store: the stream's format, order, resumption and limits, with
the app called as a server calls it (tests/unit/sse_driver.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.errors import StoreUnavailableError
from domain.model import CounterId
from entrypoints.http.app import CounterApp
from entrypoints.http.events.streams import EVENTS_STATE_KEY, EventStreams
from entrypoints.observability.endpoint import METRICS_STATE_KEY
from entrypoints.stopping import announce_stopping
from tests.unit.conftest import assert_problem, make_app, make_client
from tests.unit.sse_driver import RawStream, parse_events, serving

ABC = CounterId.default("abc")


@pytest.fixture
def store() -> InMemoryCounterRepository:
    return InMemoryCounterRepository()


async def _served(store: object, **settings: Any) -> AsyncIterator[CounterApp]:
    app = make_app(store, **settings)
    async with serving(app):
        yield app


@pytest.fixture
async def app(store: InMemoryCounterRepository) -> AsyncIterator[CounterApp]:
    async for served in _served(store, events_heartbeat_seconds=60):
        yield served


def _streams(app: CounterApp) -> EventStreams:
    streams: EventStreams = app.state[EVENTS_STATE_KEY]
    return streams


def _gauge(app: CounterApp) -> float:
    for line in app.state[METRICS_STATE_KEY].render().decode().splitlines():
        if line.startswith("counter_event_streams_open "):
            return float(line.split()[1])
    raise AssertionError("no counter_event_streams_open in /metrics")


async def test_the_first_event_is_the_current_state_with_the_retry_hint(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    for _ in range(3):
        await store.increment(ABC, 1)
    async with RawStream(app, "/counters/abc/events") as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.response_headers["cache-control"] == "no-cache"
        assert stream.response_headers["x-accel-buffering"] == "no"
        first = await stream._chunks.get()
    assert first == (
        b'retry: 2000\r\n\r\nid: 3\r\ndata: {"namespace":"default","key":"abc","value":3,"version":3}\r\n\r\n'
    )


@pytest.mark.parametrize(
    ("path", "counter"),
    [
        ("/counter/events", CounterId.default("default")),
        ("/counters/abc/events", ABC),
        ("/namespaces/team-a/counters/visits/events", CounterId("team-a", "visits")),
    ],
)
async def test_each_change_follows_in_order(
    app: CounterApp, store: InMemoryCounterRepository, path: str, counter: CounterId
) -> None:
    async with RawStream(app, path) as stream:
        [first] = await stream.events(1)
        assert first.data == {"namespace": counter.namespace, "key": counter.key, "value": 0, "version": 0}
        for _ in range(20):
            await store.increment(counter, 2)
        events = await stream.events(20)
    assert [e.data["value"] for e in events if e.data] == list(range(2, 42, 2))
    assert [e.id for e in events] == list(range(1, 21))


async def test_a_deleted_counter_is_sent_as_value_0_version_0(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    await store.increment(ABC, 5)
    async with RawStream(app, "/counters/abc/events") as stream:
        await stream.events(1)
        await store.delete(ABC)
        [gone] = await stream.events(1)
        await store.increment(ABC, 1)
        [again] = await stream.events(1)
    assert (gone.id, gone.data) == (0, {"namespace": "default", "key": "abc", "value": 0, "version": 0})
    assert (again.id, again.data and again.data["value"]) == (1, 1)


async def test_last_event_id_of_the_current_version_sends_only_what_follows(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    await store.increment(ABC, 1)
    await store.increment(ABC, 1)
    async with RawStream(app, "/counters/abc/events", [(b"last-event-id", b"2")]) as stream:
        await store.increment(ABC, 1)
        [event] = await stream.events(1)
    assert (event.id, event.data and event.data["value"]) == (3, 3)


async def test_last_event_id_behind_gets_the_current_state_at_once(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    for _ in range(5):
        await store.increment(ABC, 1)
    async with RawStream(app, "/counters/abc/events", [(b"last-event-id", b"2")]) as stream:
        [event] = await stream.events(1)
    assert (event.id, event.data and event.data["value"]) == (5, 5)


async def test_a_last_event_id_that_is_no_version_is_refused(store: InMemoryCounterRepository) -> None:
    async with make_client(store) as client:
        response = await client.get("/counters/abc/events", headers={"Last-Event-ID": "yesterday"})
    assert_problem(response, 400)


async def test_past_the_cap_503_with_retry_after_and_a_freed_slot_is_taken_again(
    store: InMemoryCounterRepository,
) -> None:
    async for app in _served(store, events_max_streams=2):
        async with RawStream(app, "/counters/abc/events"), RawStream(app, "/counters/xyz/events") as second:
            async with RawStream(app, "/counters/abc/events") as refused:
                assert refused.status == 503
                assert refused.response_headers["retry-after"] == "2"
                body = await refused.rest()
                assert "urn:counter-web-server:problem:too-many-streams" in body
            await second.disconnect()
            async with RawStream(app, "/counters/abc/events") as again:
                assert again.status == 200
                assert _streams(app).open == 2


async def test_a_client_that_goes_away_frees_its_slot_and_its_subscription(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    streams = [RawStream(app, "/counters/abc/events") for _ in range(5)]
    for stream in streams:
        await stream.__aenter__()
        await stream.events(1)
    assert _streams(app).open == 5
    assert _gauge(app) == 5
    for stream in streams:
        await stream.disconnect()
    assert _streams(app).open == 0
    assert _gauge(app) == 0
    changes = _streams(app).changes
    assert changes is not None
    assert changes.hub.watched == []  # type: ignore[attr-defined]


async def test_a_slot_is_freed_when_the_store_fails_before_the_stream_begins() -> None:
    class Down(InMemoryCounterRepository):
        async def get(self, counter: CounterId, touch: bool = False) -> Any:
            raise StoreUnavailableError("the store is down")

    async for app in _served(Down()):
        async with RawStream(app, "/counters/abc/events") as stream:
            assert stream.status == 503
        assert _streams(app).open == 0


async def test_a_slow_client_is_dropped_when_its_buffer_fills(store: InMemoryCounterRepository) -> None:
    async for app in _served(store, events_buffer_events=3, events_heartbeat_seconds=60):
        async with RawStream(app, "/counters/abc/events") as stream:
            await stream.events(1)
            stream.reading.clear()  # the client stops reading
            await store.increment(ABC, 1)  # taken by the stream, which waits to send it
            await asyncio.sleep(0)
            for _ in range(10):
                await store.increment(ABC, 1)
            changes = _streams(app).changes
            assert changes is not None
            assert changes.hub.consumers == 1  # type: ignore[attr-defined]
            stream.reading.set()
            await stream.finished()  # the stream ended by itself: the client was dropped
            text = await stream.rest()
        assert stream.ended
        assert [e.data["value"] for e in parse_events(text) if e.data] == [1]
        assert _streams(app).open == 0


async def test_an_idle_stream_ends_after_its_timeout_with_heartbeats_before(
    store: InMemoryCounterRepository,
) -> None:
    async for app in _served(store, events_idle_timeout_seconds=1, events_heartbeat_seconds=0.2):
        async with RawStream(app, "/counters/abc/events") as stream:
            await stream.finished()
            events = parse_events(await stream.rest())
        assert stream.ended
        assert any(e.comment == "ping" for e in events)
        assert _streams(app).open == 0


async def test_streams_end_cleanly_when_the_server_begins_to_stop(app: CounterApp) -> None:
    streams = [RawStream(app, f"/counters/c{n}/events") for n in range(20)]
    for stream in streams:
        await stream.__aenter__()
    announce_stopping()
    for stream in streams:
        await stream.finished()
        assert stream.ended  # the last body message was sent: a complete answer
    assert _streams(app).open == 0
    async with RawStream(app, "/counters/abc/events") as late:
        assert late.status == 503


async def test_the_three_routes_are_documented(store: InMemoryCounterRepository) -> None:
    async with make_client(store) as client:
        paths = (await client.get("/schema/openapi.json")).json()["paths"]
    operations = {
        paths[path]["get"]["operationId"]
        for path in (
            "/counter/events",
            "/counters/{name}/events",
            "/namespaces/{namespace}/counters/{key}/events",
        )
    }
    assert operations == {"defaultCounterEvents", "counterEvents", "namespaceCounterEvents"}


async def test_head_of_a_stream_answers_its_headers_and_frees_its_slot(
    store: InMemoryCounterRepository,
) -> None:
    async with make_client(store) as client:
        response = await client.head("/counters/abc/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""
    assert _streams(client.app).open == 0


async def test_a_stream_passes_the_rate_limits_like_any_get(store: InMemoryCounterRepository) -> None:
    async for app in _served(store, rate_limit_per_client="1/minute"):
        async with RawStream(app, "/counters/abc/events") as allowed:
            assert allowed.status == 200
            async with RawStream(app, "/counters/abc/events") as limited:
                assert limited.status == 429
        assert _streams(app).open == 0
