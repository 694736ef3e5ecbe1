"""Abacus's `/abacus/stream/{namespace}/{key}`: the native event streams with Abacus's data,
with the app called as a server calls it (tests/unit/sse_driver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from entrypoints.http.app import CounterApp
from entrypoints.http.events.streams import EVENTS_STATE_KEY, EventStreams
from tests.unit.conftest import make_app
from tests.unit.sse_driver import RawStream, serving

COUNTER = CounterId("test", "stream_key")


@pytest.fixture
def store() -> InMemoryCounterRepository:
    return InMemoryCounterRepository()


@pytest.fixture
async def app(store: InMemoryCounterRepository) -> AsyncIterator[CounterApp]:
    served = make_app(store, events_heartbeat_seconds=60)
    async with serving(served):
        yield served


async def test_the_stream_sends_abacus_values_on_connect_and_for_each_hit(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    # Abacus's TestStreamValueView: the value on connect, then `data: {"value":N}` per hit.
    await store.increment(COUNTER, 4)
    async with RawStream(app, "/abacus/stream/test/stream_key") as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.response_headers["access-control-allow-origin"] == "*"
        [first] = await stream.events(1)
        assert (first.id, first.data) == (1, {"value": 4})
        seen = []
        for _ in range(3):
            await store.increment(COUNTER, 1)
            [event] = await stream.events(1)
            seen.append((event.id, event.data))
    assert seen == [(2, {"value": 5}), (3, {"value": 6}), (4, {"value": 7})]
    streams: EventStreams = app.state[EVENTS_STATE_KEY]
    assert streams.open == 0


async def test_an_invalid_name_is_refused_before_any_stream(app: CounterApp) -> None:
    async with RawStream(app, "/abacus/stream/test/ab") as stream:
        assert stream.status == 400


async def test_a_last_event_id_that_is_no_version_starts_with_the_current_value(
    app: CounterApp, store: InMemoryCounterRepository
) -> None:
    await store.increment(COUNTER, 2)
    async with RawStream(app, "/abacus/stream/test/stream_key", [(b"last-event-id", b"nope")]) as stream:
        assert stream.status == 200
        [first] = await stream.events(1)
    assert (first.id, first.data) == (1, {"value": 2})
