"""Rate limits in one process (the memory windows): off by default, 429 with Retry-After and the
RateLimit-* headers as problem details, per client address behind trusted proxies, per counter
for writes, health checks exempt. Shared windows on Redis: tests/integration/test_rate_limit_shared.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Request
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from entrypoints.http.rate_limit import MemoryWindowStore, client_address, rate_limits
from entrypoints.settings import Settings, SettingsError
from tests.unit.conftest import ADMIN_TOKEN, assert_problem, make_client

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy")


def limited(store: InMemoryCounterRepository, fast_path: bool, **settings: Any) -> Client:
    return make_client(store, admin_token=ADMIN_TOKEN, fast_path=fast_path, **settings)


async def test_off_by_default_many_requests_and_no_429(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    assert rate_limits(Settings()).middleware == []
    async with limited(memory_store, fast_path) as client:
        answers = [await client.post("/counters/many") for _ in range(300)]
        answers += [await client.get("/counters/many") for _ in range(100)]
    assert {answer.status_code for answer in answers} == {200}
    assert not any(header in answers[-1].headers for header in RATE_HEADERS)
    assert (await memory_store.get(CounterId.default("many"))).count == 300


@pytest.mark.parametrize("path", ["/counter", "/counters/x"])
async def test_past_the_limit_429_with_retry_after_and_the_headers(
    memory_store: InMemoryCounterRepository, fast_path: bool, path: str
) -> None:
    async with limited(memory_store, fast_path, rate_limit_per_client="3/minute") as client:
        counted = [await client.post(path) for _ in range(3)]
        refused = await client.post(path)
        read_refused = await client.get(path)
    assert [answer.status_code for answer in counted] == [200, 200, 200]
    assert [answer.headers["ratelimit-remaining"] for answer in counted] == ["2", "1", "0"]
    for answer in counted:
        assert answer.headers["ratelimit-limit"] == "3"
        assert answer.headers["ratelimit-policy"] == "3; w=60"
        assert 1 <= int(answer.headers["ratelimit-reset"]) <= 60
        assert "retry-after" not in answer.headers
    for answer in (refused, read_refused):
        body = assert_problem(answer, 429, "more than 3 requests per minute from this client", "retry after")
        assert body["title"] == "Too Many Requests"
        assert body["instance"] == path
        assert answer.headers["ratelimit-remaining"] == "0"
        assert answer.headers["ratelimit-limit"] == "3"
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert answer.headers["retry-after"] == answer.headers["ratelimit-reset"]
    name = "default" if path == "/counter" else "x"
    assert (
        await memory_store.get(CounterId.default(name))
    ).count == 3  # the refused increment was not counted


async def test_health_checks_are_never_limited(memory_store: InMemoryCounterRepository) -> None:
    async with limited(memory_store, fast_path=True, rate_limit_per_client="2/minute") as client:
        health = [await client.get(path) for _ in range(10) for path in ("/health/live", "/health/ready")]
        assert {answer.status_code for answer in health} == {200}
        assert not any("ratelimit-limit" in answer.headers for answer in health)
        # They did not use up the client's window either.
        assert [(await client.get("/counter")).status_code for _ in range(3)] == [200, 200, 429]


async def test_a_head_past_the_limit_gets_the_headers_without_a_body(
    memory_store: InMemoryCounterRepository,
) -> None:
    async with limited(memory_store, fast_path=True, rate_limit_per_client="1/minute") as client:
        assert (await client.head("/counter")).status_code == 200
        refused = await client.head("/counter")
        as_get = await client.get("/counter")
    assert refused.status_code == as_get.status_code == 429
    assert refused.content == b""
    assert refused.headers["retry-after"] == as_get.headers["retry-after"]
    assert refused.headers["content-type"].startswith("application/problem+json")


def forwarded(*hops: str, peer: str = "10.0.0.9") -> Request[Any, Any, Any]:
    headers = [(b"x-forwarded-for", hop.encode()) for hop in hops]
    scope: Any = {"type": "http", "headers": headers, "client": (peer, 4711)}
    return Request(scope)


@pytest.mark.parametrize(
    ("hops", "header_lines", "expected"),
    [
        (0, ["203.0.113.7"], "10.0.0.9"),  # no trusted proxy: the header is the client's own word
        (1, [], "10.0.0.9"),  # no header: the peer
        (1, ["203.0.113.7"], "203.0.113.7"),
        (1, ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),  # what the client wrote itself is left of it
        (2, ["6.6.6.6, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        (2, ["6.6.6.6, 203.0.113.7", "10.0.0.2"], "203.0.113.7"),  # two header lines are one list
        (3, ["203.0.113.7, 10.0.0.2"], "203.0.113.7"),  # fewer than the hops: the leftmost
        (1, ["203.0.113.7:5123"], "203.0.113.7"),  # a port some proxies add
        (1, ["[2001:db8::7]:443"], "2001:db8::7"),
        (1, ["2001:DB8:0::7"], "2001:db8::7"),  # one address, one key, however written
        (1, ["unknown"], "10.0.0.9"),  # not an address: the proxy's, never a new client
        (1, ["203.0.113.7, "], "203.0.113.7"),  # empty items are no hops
    ],
)
def test_the_client_address_behind_trusted_proxies(hops: int, header_lines: list[str], expected: str) -> None:
    assert client_address(forwarded(*header_lines), hops) == expected


async def test_clients_behind_a_trusted_proxy_each_get_their_own_window(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    settings = {"rate_limit_per_client": "2/minute", "trusted_proxy_hops": 1}
    async with limited(memory_store, fast_path, **settings) as client:

        async def post_from(address: str, spoofed: str = "") -> int:
            chain = f"{spoofed}, {address}" if spoofed else address
            return (await client.post("/counter", headers={"X-Forwarded-For": chain})).status_code

        assert [await post_from("198.51.100.1") for _ in range(3)] == [200, 200, 429]
        assert [await post_from("198.51.100.2") for _ in range(2)] == [200, 200]
        # A client that writes its own X-Forwarded-For in front is still the address the proxy saw.
        assert await post_from("198.51.100.1", spoofed="192.0.2.99") == 429
    async with limited(InMemoryCounterRepository(), fast_path, rate_limit_per_client="2/minute") as client:
        # Trusting no proxy, every X-Forwarded-For is ignored: one client, one window.
        statuses = [
            (await client.post("/counter", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(3)
        ]
        assert statuses == [200, 200, 429]


async def test_a_per_counter_write_limit_leaves_other_counters_and_reads_alone(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with limited(memory_store, fast_path, rate_limit_per_counter_writes="3/minute") as client:
        writes = [
            await client.post("/counters/hot"),
            await client.put("/counters/hot", json={"count": 10}, headers=ADMIN),
            await client.post("/counters/hot", json={"by": 2}),
        ]
        assert [answer.status_code for answer in writes] == [200, 200, 200]
        assert [answer.headers["ratelimit-remaining"] for answer in writes] == ["2", "1", "0"]
        refused = [
            await client.post("/counters/hot"),
            await client.delete("/counters/hot", headers=ADMIN),
        ]
        for answer in refused:
            assert_problem(answer, 429, "more than 3 writes per minute to this counter")
            assert int(answer.headers["retry-after"]) >= 1
        reads = [await client.get("/counters/hot") for _ in range(10)]
        assert {answer.status_code for answer in reads} == {200}
        assert "ratelimit-limit" not in reads[0].headers
        assert reads[-1].json()["count"] == 12
        others = [await client.post("/counters/cold") for _ in range(3)] + [await client.post("/counter")]
        assert {answer.status_code for answer in others} == {200}
        listing = [await client.get("/counters") for _ in range(5)]
        assert {answer.status_code for answer in listing} == {200}
    assert (await memory_store.get(CounterId.default("hot"))).count == 12
    assert (await memory_store.get(CounterId.default("cold"))).count == 3


async def test_with_both_limits_the_headers_are_those_of_the_nearer_one(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    settings = {"rate_limit_per_client": "10/minute", "rate_limit_per_counter_writes": "2/minute"}
    async with limited(memory_store, fast_path, **settings) as client:
        first = await client.post("/counters/a")
        assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
        read = await client.get("/counters/a")  # only the client's limit counts a read
        assert (read.headers["ratelimit-limit"], read.headers["ratelimit-remaining"]) == ("10", "8")
        await client.post("/counters/a")
        refused = await client.post("/counters/a")
        assert_problem(refused, 429, "to this counter")
        assert refused.headers["ratelimit-limit"] == "2"
        # The client's window: 4 so far, so 6 more, whichever counters they go to.
        statuses = [(await client.post(f"/counters/c{i}")).status_code for i in range(7)]
        assert statuses == [200] * 6 + [429]


async def test_the_memory_window_counts_each_request_once_and_ends() -> None:
    store = MemoryWindowStore()
    windows = await asyncio.gather(*(store.hit("k", 1) for _ in range(50)))
    assert sorted(w.count for w in windows if w is not None) == list(range(1, 51))
    assert (await store.hit("other", 60)) is not None
    await asyncio.sleep(1.05)  # the one-second window ends; the next request opens a new one
    again = await store.hit("k", 1)
    assert again is not None
    assert again.count == 1


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("100/minute", "100/minute"), (" 5 / Second ", "5/second"), ("1/day", "1/day"), ("", "")],
)
def test_a_rate_setting_is_n_per_period(value: str, canonical: str) -> None:
    assert Settings.from_env({"COUNTER_RATE_LIMIT_PER_CLIENT": value}).rate_limit_per_client == canonical


@pytest.mark.parametrize(
    "value", ["100", "100/min", "0/minute", "-1/minute", "1.5/second", "x/hour", "2/week"]
)
@pytest.mark.parametrize(
    "variable", ["COUNTER_RATE_LIMIT_PER_CLIENT", "COUNTER_RATE_LIMIT_PER_COUNTER_WRITES"]
)
def test_a_wrong_rate_names_the_variable_and_the_form(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert "like 100/minute" in str(raised.value)
    assert "N/second, N/minute, N/hour or N/day" in str(raised.value)


@pytest.mark.parametrize("value", ["-1", "17", "one"])
def test_trusted_proxy_hops_are_0_to_16(value: str) -> None:
    with pytest.raises(SettingsError, match=r"COUNTER_TRUSTED_PROXY_HOPS: .*0-16"):
        Settings.from_env({"COUNTER_TRUSTED_PROXY_HOPS": value})


async def test_the_default_counter_has_one_write_window_under_both_its_paths(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with limited(memory_store, fast_path, rate_limit_per_counter_writes="2/minute") as client:
        assert (await client.post("/counter")).status_code == 200
        assert (await client.post("/counters/default")).status_code == 200
        assert_problem(await client.post("/counter"), 429, "to this counter")
        assert (await client.get("/counter")).json()["count"] == 2


async def test_cors_preflights_are_answered_before_the_limits_and_not_counted(
    memory_store: InMemoryCounterRepository,
) -> None:
    origin = "https://app.example"
    settings = {"rate_limit_per_client": "1/minute", "cors_allow_origins": origin}
    async with limited(memory_store, fast_path=True, **settings) as client:
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        assert [(await client.options("/counter", headers=preflight)).status_code for _ in range(5)] == [
            204
        ] * 5
        assert (await client.post("/counter", headers={"Origin": origin})).status_code == 200
        refused = await client.post("/counter", headers={"Origin": origin})
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == origin  # a page can read why


async def test_refusals_are_in_the_metrics_and_scrapes_are_never_limited(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with limited(memory_store, fast_path, rate_limit_per_client="2/minute") as client:
        statuses = [(await client.post("/counter")).status_code for _ in range(5)]
        scrapes = [await client.get("/metrics") for _ in range(3)]
    assert statuses == [200, 200, 429, 429, 429]
    assert [scrape.status_code for scrape in scrapes] == [200, 200, 200]
    requests = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(scrapes[-1].text)
        for sample in family.samples
        if sample.name == "counter_requests_total" and sample.labels["method"] == "POST"
    }
    assert requests == {("/counter", "200"): 2, ("/counter", "429"): 3}


async def test_the_per_counter_write_limit_is_keyed_by_namespace_and_key(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    """One counter has one limit on either of its routes; the same key in another namespace is
    another counter, with a limit of its own."""
    async with limited(memory_store, fast_path, rate_limit_per_counter_writes="2/minute") as client:
        same = [await client.post("/counters/hot"), await client.post("/namespaces/default/counters/hot")]
        assert [answer.status_code for answer in same] == [200, 200]
        assert_problem(await client.post("/counters/hot"), 429)
        assert_problem(await client.post("/namespaces/default/counters/hot"), 429)
        elsewhere = [await client.post("/namespaces/blog/counters/hot") for _ in range(3)]
        assert [answer.status_code for answer in elsewhere] == [200, 200, 429]
        assert (await client.post("/namespaces/shop/counters/hot")).status_code == 200
    assert (await memory_store.get(CounterId("blog", "hot"))).count == 2


@pytest.mark.parametrize(
    ("hit", "read"),
    [("/counters/seen/hit.svg", "/counters/seen/badge.svg"), ("/counter/hit.svg", "/counter/badge.svg")],
)
async def test_the_hit_badge_is_a_write_for_the_per_counter_limit(
    memory_store: InMemoryCounterRepository, fast_path: bool, hit: str, read: str
) -> None:
    async with limited(memory_store, fast_path, rate_limit_per_counter_writes="2/minute") as client:
        hits = [await client.get(hit) for _ in range(3)]
        reads = [await client.get(read) for _ in range(5)]
    assert [answer.status_code for answer in hits] == [200, 200, 429]
    assert hits[-1].headers["retry-after"]
    assert {answer.status_code for answer in reads} == {200}  # the read badge never counts
    assert (await memory_store.get(CounterId.default("seen" if "seen" in hit else "default"))).count == 2
