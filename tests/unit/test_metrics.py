"""GET /metrics in one process: what it counts, by route template, and what it leaves out."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from adapters.memory import InMemoryCounterRepository
from domain.errors import CounterOverflowError, StoreUnavailableError
from domain.idempotency import Idempotency
from domain.model import CounterId, Incremented
from tests.unit.conftest import make_client

JSON = {"content-type": "application/json"}


def samples(text: str, name: str) -> list[Sample]:
    """The samples named `name` in a scrape (the text must parse as a whole)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    """The one sample of `name` with exactly these labels (0 when there is none)."""
    found = [s.value for s in samples(text, name) if s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else 0.0


def by_labels(found: Iterable[Sample], *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[k] for k in keys): s.value for s in found}


class FailingStore(InMemoryCounterRepository):
    """The memory store, whose increments raise `error` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None

    async def increment(
        self, name: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        if self.error is not None:
            raise self.error
        return await super().increment(name, by, idempotency)


async def test_requests_are_counted_by_route_template_method_and_status(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with make_client(memory_store, fast_path=fast_path) as client:
        for _ in range(7):
            assert (await client.post("/counter")).status_code == 200
        for _ in range(3):
            assert (await client.post("/counters/abc", content=b'{"by": ', headers=JSON)).status_code == 400
        for _ in range(4):
            assert (await client.get("/counters/abc")).status_code == 200
        for _ in range(2):
            assert (await client.post("/counters/-b")).status_code == 400
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = by_labels(samples(text, "counter_requests_total"), "route", "method", "status")
    assert requests == {
        ("/counter", "POST", "200"): 7,
        ("/counters/{name}", "POST", "400"): 5,
        ("/counters/{name}", "GET", "200"): 4,
    }
    durations = by_labels(samples(text, "counter_request_duration_seconds_count"), "route", "method")
    assert durations == {
        ("/counter", "POST"): 7,
        ("/counters/{name}", "POST"): 5,
        ("/counters/{name}", "GET"): 4,
    }
    assert value(text, "counter_request_duration_seconds_sum", route="/counter", method="POST") > 0
    # Only what reached the store: bad bodies and names never do.
    assert value(text, "counter_increments_total") == 7
    store = {"store": "memory"}
    assert value(text, "counter_store_operation_duration_seconds_count", **store, operation="increment") == 7
    assert value(text, "counter_store_operation_duration_seconds_count", **store, operation="get") == 4
    assert value(text, "counter_store_errors_total", **store, operation="increment") == 0
    assert value(text, "counter_build_info", store="memory", version=value_of_version(text)) == 1


def value_of_version(text: str) -> str:
    (info,) = samples(text, "counter_build_info")
    assert info.labels["version"]
    return info.labels["version"]


async def test_the_scrape_itself_is_counted_by_the_next(memory_store: InMemoryCounterRepository) -> None:
    async with make_client(memory_store) as client:
        await client.get("/metrics")
        text = (await client.get("/metrics")).text
    assert value(text, "counter_requests_total", route="/metrics", method="GET", status="200") == 1


async def test_a_replayed_idempotency_key_is_not_an_increment_applied(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with make_client(memory_store, fast_path=fast_path) as client:
        for _ in range(3):
            response = await client.post("/counters/abc", headers={"Idempotency-Key": "k-1"})
            assert response.status_code == 200
        text = (await client.get("/metrics")).text
    assert value(text, "counter_increments_total") == 1
    store = {"store": "memory", "operation": "increment"}
    assert value(text, "counter_store_operation_duration_seconds_count", **store) == 3


@pytest.mark.parametrize(
    ("error", "status", "failures"),
    [
        (StoreUnavailableError("the store is down", retry_after=1), 503, 1),
        (RuntimeError("a bug"), 500, 1),
        (CounterOverflowError("would overflow"), 409, 0),  # the client's refusal, not a failure
    ],
)
async def test_store_failures_are_counted_and_refusals_are_not(
    fast_path: bool, error: Exception, status: int, failures: int
) -> None:
    store = FailingStore()
    async with make_client(store, fast_path=fast_path) as client:
        assert (await client.post("/counters/abc")).status_code == 200
        store.error = error
        assert (await client.post("/counters/abc")).status_code == status
        text = (await client.get("/metrics")).text
    assert value(text, "counter_store_errors_total", store="memory", operation="increment") == failures
    assert value(text, "counter_store_errors_total", store="memory", operation="get") == 0
    assert value(text, "counter_increments_total") == 1
    route = {"route": "/counters/{name}", "method": "POST"}
    assert value(text, "counter_requests_total", **route, status=str(status)) == 1


async def test_metrics_are_left_out_of_the_openapi_description(
    memory_store: InMemoryCounterRepository,
) -> None:
    async with make_client(memory_store) as client:
        paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert "/counter" in paths


async def test_each_app_has_metrics_of_its_own(memory_store: InMemoryCounterRepository) -> None:
    async with make_client(memory_store) as first:
        await first.post("/counter")
    async with make_client(memory_store) as second:
        text = (await second.get("/metrics")).text
    assert value(text, "counter_increments_total") == 0
