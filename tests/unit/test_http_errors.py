"""Errors over HTTP: a store that is down, full or unreadable, and a bug, each answered with
problem details that name nothing internal (the log has the rest), with titles the errors own."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.errors import (
    IdempotencyTableFullError,
    OutcomeUnknownError,
    StoreCorruptedError,
    StoreFullError,
    StoreUnavailableError,
)
from domain.model import INT64_MAX, Counter, CounterId
from entrypoints.http.errors import release_dependency_group
from entrypoints.logs import RequestIdFilter
from tests.unit.conftest import assert_problem, make_client

Client = AsyncTestClient[Any]


class BrokenStore(InMemoryCounterRepository):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get(self, name: CounterId, touch: bool = False) -> Counter:
        raise self.error

    async def increment(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    async def ping(self) -> None:
        raise self.error


async def test_store_down_gives_503_with_retry_after_and_no_value(fast_path: bool) -> None:
    async with make_client(
        BrokenStore(StoreUnavailableError("redis at 127.0.0.1:1 refused", retry_after=2)), fast_path=fast_path
    ) as c:
        for response in (await c.post("/counter"), await c.get("/counter"), await c.get("/health/ready")):
            body = assert_problem(response, 503, "nothing was changed", "Retry-After")
            assert response.headers["retry-after"] == "2"
            assert "count" not in body
        assert (await c.get("/health/live")).status_code == 200


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (StoreUnavailableError("redis at 10.1.2.3:6379 refused"), ("nothing was changed",)),
        (
            StoreUnavailableError("ConfigMap prod-ns/counter-store: 10.96.0.1:443 timed out"),
            ("nothing was changed",),
        ),
        (OutcomeUnknownError("redis at 10.1.2.3:6379 timed out after the write"), ("same Idempotency-Key",)),
    ],
)
async def test_a_503_tells_the_client_nothing_internal_and_the_log_everything(
    fast_path: bool, caplog: pytest.LogCaptureFixture, error: StoreUnavailableError, words: tuple[str, ...]
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.WARNING, logger="counter.http")
    async with make_client(BrokenStore(error), fast_path=fast_path) as c:
        response = await c.post("/counters/x", headers={"X-Request-ID": "rid-503"})
    assert_problem(response, 503, *words)
    internals = ("10.1.2.3", "6379", "10.96.0.1", "443", "prod-ns", "counter-store", "redis", "ConfigMap")
    for internal in internals:
        assert internal not in response.text, internal
    logged = [r for r in caplog.records if r.getMessage() == "store unavailable"]
    assert [(r.error, r.request_id) for r in logged] == [(str(error), "rid-503")]  # type: ignore[attr-defined]


async def test_a_503_says_whether_anything_was_counted(fast_path: bool) -> None:
    async with make_client(BrokenStore(StoreUnavailableError("refused")), fast_path=fast_path) as c:
        not_counted = assert_problem(await c.post("/counter"), 503)
    async with make_client(
        BrokenStore(OutcomeUnknownError("no answer", retry_after=3)), fast_path=fast_path
    ) as c:
        response = await c.post("/counter", headers={"Idempotency-Key": "k-1"})
        unknown = assert_problem(response, 503)
    assert not_counted["type"].endswith(":store-unavailable")
    assert unknown["type"].endswith(":outcome-unknown")
    assert unknown["title"] == OutcomeUnknownError.title
    assert "Idempotency-Key" in unknown["title"]
    assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (StoreFullError("ConfigMap ns-a/store-b is full", retry_after=3600), 507, "store-full"),
        (
            IdempotencyTableFullError("table of ns-a/store-b full", retry_after=40),
            503,
            "idempotency-table-full",
        ),
    ],
)
async def test_a_full_store_says_so_without_naming_its_internals(
    fast_path: bool, error: StoreUnavailableError, status: int, slug: str
) -> None:
    async with make_client(BrokenStore(error), fast_path=fast_path) as c:
        response = await c.post("/counters/new-one", headers={"Idempotency-Key": "k"})
    body = assert_problem(response, status)
    assert body["type"].endswith(f":{slug}")
    assert body["title"] == type(error).title
    assert body["detail"] == type(error).client_detail
    assert "ns-a" not in response.text
    assert response.headers["retry-after"] == str(error.retry_after)


async def test_unreadable_data_gives_500_naming_only_the_counter(
    fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    message = "ConfigMap prod-ns/counter-store key 'x' is unreadable (not JSON)"
    async with make_client(BrokenStore(StoreCorruptedError(message)), fast_path=fast_path) as c:
        answers = {
            "'default'": await c.get("/counter"),
            "'x'": await c.post("/counters/x", headers={"X-Request-ID": "rid-500"}),
            "'y'": await c.get("/counters/y"),
        }
    for counter, response in answers.items():
        body = assert_problem(response, 500, counter, "left untouched")
        assert body["type"].endswith(":store-corrupted")
        assert "prod-ns" not in response.text
        assert "counter-store" not in response.text
    logged = [r for r in caplog.records if r.getMessage() == "unreadable stored data"]
    assert (message, "rid-500") in [(r.error, r.request_id) for r in logged]  # type: ignore[attr-defined]


async def test_unreadable_data_names_the_counter_the_store_names(fast_path: bool) -> None:
    error = StoreCorruptedError("counter:c:other holds b'abc'", counter="other")
    async with make_client(BrokenStore(error), fast_path=fast_path) as c:
        response = await c.get("/counter")
    assert_problem(response, 500, "'other'")
    assert "counter:c:" not in response.text


async def test_a_bug_gives_500_without_internal_detail(fast_path: bool) -> None:
    async with make_client(BrokenStore(RuntimeError("secret internal detail")), fast_path=fast_path) as c:
        response = await c.post("/counter")
        body = assert_problem(response, 500)
        assert "secret" not in response.text
        assert "request" in body["detail"]


# --- health, request id, docs ------------------------------------------------------------------


async def test_problem_titles_are_the_errors_own(client: Client) -> None:
    from domain.errors import CounterOverflowError, InvalidAmountError, InvalidCounterNameError

    assert (await client.post("/counters/t")).status_code == 200
    answers = {
        CounterOverflowError: await client.post("/counters/t", json={"by": INT64_MAX}),
        InvalidAmountError: await client.post("/counters/t", json={"by": 0}),
        InvalidCounterNameError: await client.post("/counters/bad!name"),
    }
    for error, response in answers.items():
        assert response.json()["title"] == error.title, response.text


def fail_in_a_batch(error: Exception) -> None:
    raise ExceptionGroup("unhandled errors in a TaskGroup", [error])


def raised_from_its_group(error: Exception) -> Exception:
    """`error` as Litestar raises an error of a batch of dependencies: `from` the task group's
    exception group, which holds it."""
    try:
        try:
            fail_in_a_batch(error)
        except ExceptionGroup as group:
            raise group.exceptions[0] from group
    except Exception as caught:
        return caught
    raise AssertionError


async def test_an_error_of_a_dependency_batch_is_unchained_from_the_group_that_holds_it() -> None:
    error = raised_from_its_group(ValueError("refused"))
    group = error.__cause__
    assert isinstance(group, ExceptionGroup)
    assert error in group.exceptions
    await release_dependency_group(error, {})
    assert (error.__cause__, error.__context__) == (None, None)
    assert error.__traceback__ is not None  # its own traceback stays, for the log


async def test_any_other_cause_is_kept() -> None:
    other = raised_from_its_group(KeyError("other"))
    error = ValueError("refused")
    error.__cause__ = other.__cause__  # a group, but not one that holds this error
    await release_dependency_group(error, {})
    assert error.__cause__ is other.__cause__
