"""The HTTP contract over the in-memory store: status codes, bodies and headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.errors import StoreCorruptedError, StoreUnavailableError
from domain.model import INT64_MAX, Counter
from tests.unit.conftest import ADMIN_TOKEN, make_client

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    for word in words:
        assert word in body["detail"], body
    assert "Traceback" not in response.text
    return body


async def test_default_counter_starts_at_zero_and_counts_each_post(client: Client) -> None:
    assert (await client.get("/counter")).json() == {"name": "default", "count": 0}
    for expected in (1, 2, 3):
        response = await client.post("/counter")
        assert response.status_code == 200
        assert response.json()["count"] == expected
        assert response.json()["name"] == "default"
    assert (await client.get("/counter")).json()["count"] == 3


async def test_named_counters_are_separate(client: Client) -> None:
    await client.post("/counters/visits")
    await client.post("/counters/visits")
    await client.post("/counters/other.page-1_x")
    assert (await client.get("/counters/visits")).json()["count"] == 2
    assert (await client.get("/counters/other.page-1_x")).json()["count"] == 1
    assert (await client.get("/counter")).json()["count"] == 0


async def test_increment_by_an_amount_and_decrement(client: Client) -> None:
    assert (await client.post("/counters/c", json={"by": 10})).json()["count"] == 10
    assert (await client.post("/counters/c", json={"by": -3})).json()["count"] == 7
    assert (await client.post("/counter", json={"by": 4})).json()["count"] == 4


async def test_concurrent_posts_are_all_counted(client: Client) -> None:
    responses = await asyncio.gather(*(client.post("/counter") for _ in range(100)))
    assert {r.status_code for r in responses} == {200}
    assert sorted(r.json()["count"] for r in responses) == list(range(1, 101))


@pytest.mark.parametrize(
    "name", ["-starts-with-dash", "has space", "x" * 64, "_underscore", "ümlaut", ".dot", "semi;colon"]
)
async def test_invalid_names_get_400_and_change_nothing(client: Client, name: str) -> None:
    assert_problem(await client.post(f"/counters/{name}"), 400, "invalid")
    assert_problem(await client.get(f"/counters/{name}"), 400)
    assert (await client.get("/counters")).json()["counters"] == []


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b"{not json", 400, "malformed"),
        (b'{"by": "one"}', 400, "by"),
        (b'{"by": 1.5}', 400, "by"),
        (b'{"by": 9223372036854775808}', 400, "by"),
        (b'{"step": 1}', 400, "step"),
        (b'{"by": 0}', 422, "0"),
        (b"[1]", 400, ""),
    ],
)
async def test_bad_bodies_get_4xx_and_change_nothing(
    client: Client, body: bytes, status: int, word: str
) -> None:
    response = await client.post("/counter", content=body, headers={"content-type": "application/json"})
    assert_problem(response, status, word)
    assert (await client.get("/counter")).json()["count"] == 0


async def test_overflow_gets_409_and_changes_nothing(client: Client) -> None:
    await client.post("/counter", json={"by": INT64_MAX})
    body = assert_problem(await client.post("/counter"), 409, "64-bit")
    assert body["type"].endswith("counter-overflow")
    assert (await client.get("/counter")).json()["count"] == INT64_MAX


async def test_body_over_the_limit_gets_413(client: Client) -> None:
    padding = " " * 5000
    response = await client.post("/counter", content=f'{{"by": 1{padding}}}'.encode())
    assert_problem(response, 413)
    assert (await client.get("/counter")).json()["count"] == 0


async def test_unknown_route_and_method_are_problem_details(client: Client) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.patch("/counter"), 405)


# --- idempotency -------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_recorded_response(client: Client) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/counters/orders", json={"by": 2}, headers=headers)
    again = await client.post("/counters/orders", json={"by": 2}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (await client.get("/counters/orders")).json()["count"] == 2


async def test_idempotency_key_with_another_body_gets_422(client: Client) -> None:
    headers = {"Idempotency-Key": "k"}
    await client.post("/counters/a", headers=headers)
    assert_problem(await client.post("/counters/a", json={"by": 5}, headers=headers), 422, "different")
    assert_problem(await client.post("/counters/b", headers=headers), 422)
    assert (await client.get("/counters/a")).json()["count"] == 1
    assert (await client.get("/counters/b")).json()["count"] == 0


async def test_fifty_concurrent_posts_with_one_key_count_once(client: Client) -> None:
    headers = {"Idempotency-Key": "same"}
    responses = await asyncio.gather(*(client.post("/counter", headers=headers) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    assert (await client.get("/counter")).json()["count"] == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
async def test_invalid_idempotency_key_gets_400(client: Client, key: str) -> None:
    response = await client.post("/counter", headers=[(b"Idempotency-Key", key.encode("latin-1"))])
    assert_problem(response, 400, "Idempotency-Key")
    assert (await client.get("/counter")).json()["count"] == 0


# --- admin -------------------------------------------------------------------------------------


async def test_set_returns_new_and_previous(client: Client) -> None:
    await client.post("/counters/s", json={"by": 7})
    response = await client.put("/counters/s", json={"count": 100}, headers=ADMIN)
    assert response.status_code == 200
    assert (response.json()["count"], response.json()["previous"]) == (100, 7)
    assert (await client.get("/counters/s")).json()["count"] == 100


async def test_delete_returns_last_value_and_counter_reads_zero(client: Client) -> None:
    await client.post("/counters/d", json={"by": 3})
    response = await client.delete("/counters/d", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert (await client.get("/counters/d")).json()["count"] == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}]
)
async def test_admin_without_the_right_token_gets_401(client: Client, headers: dict[str, str]) -> None:
    await client.post("/counters/p")
    assert_problem(await client.put("/counters/p", json={"count": 9}, headers=headers), 401)
    response = await client.delete("/counters/p", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/counters/p")).json()["count"] == 1


async def test_admin_without_a_configured_token_gets_403(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with make_client(memory_store, admin_token="", fast_path=fast_path) as client:
        assert_problem(
            await client.put("/counters/x", json={"count": 1}, headers=ADMIN), 403, "COUNTER_ADMIN_TOKEN"
        )
        assert_problem(await client.delete("/counters/x"), 403, "COUNTER_ADMIN_TOKEN")


async def test_set_with_a_bad_body_gets_400(client: Client) -> None:
    assert_problem(await client.put("/counters/x", json={"count": "many"}, headers=ADMIN), 400)
    assert_problem(await client.put("/counters/x", json={}, headers=ADMIN), 400)


# --- listing -----------------------------------------------------------------------------------


async def test_listing_is_sorted_and_paginated_with_an_opaque_cursor(client: Client) -> None:
    for name in ("c", "a", "d", "b", "e"):
        await client.post(f"/counters/{name}")
    names: list[str] = []
    url = "/counters?limit=2"
    while True:
        page = (await client.get(url)).json()
        names += [c["name"] for c in page["counters"]]
        if page["next_cursor"] is None:
            break
        url = f"/counters?limit=2&cursor={page['next_cursor']}"
    assert names == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=%40%40", "cursor=X19fXw"])
async def test_listing_with_a_bad_query_gets_400(client: Client, query: str) -> None:
    assert_problem(await client.get(f"/counters?{query}"), 400)


# --- store failures ----------------------------------------------------------------------------


class BrokenStore(InMemoryCounterRepository):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get(self, name: str) -> Counter:
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
            body = assert_problem(response, 503)
            assert response.headers["retry-after"] == "2"
            assert "count" not in body
        assert (await c.get("/health/live")).status_code == 200


async def test_a_503_says_whether_anything_was_counted(fast_path: bool) -> None:
    from domain.errors import OutcomeUnknownError

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


async def test_unreadable_data_gives_500_with_a_clear_message(fast_path: bool) -> None:
    async with make_client(
        BrokenStore(StoreCorruptedError("counter 'x' holds 'abc'")), fast_path=fast_path
    ) as c:
        assert_problem(await c.get("/counter"), 500, "abc")
        assert_problem(await c.post("/counters/x"), 500, "abc")


async def test_a_bug_gives_500_without_internal_detail(fast_path: bool) -> None:
    async with make_client(BrokenStore(RuntimeError("secret internal detail")), fast_path=fast_path) as c:
        response = await c.post("/counter")
        body = assert_problem(response, 500)
        assert "secret" not in response.text
        assert "request" in body["detail"]


# --- health, request id, docs ------------------------------------------------------------------


async def test_health(client: Client) -> None:
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    assert (await client.get("/health/ready")).json() == {"status": "ready", "store": "memory"}


async def test_request_id_is_taken_or_made_and_returned(client: Client) -> None:
    given = await client.get("/counter", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/counter", headers={"X-Request-ID": "bad id\twith spaces"})
    assert "bad" not in made.headers["x-request-id"]
    assert len(made.headers["x-request-id"]) >= 14
    others = {(await client.get("/counter")).headers["x-request-id"] for _ in range(50)}
    assert len(others | {made.headers["x-request-id"]}) == 51


async def test_docs_redirect_and_swagger_uses_only_local_assets(client: Client) -> None:
    redirect = await client.get("/docs", follow_redirects=False)
    assert redirect.status_code in {302, 307}
    assert redirect.headers["location"] == "/schema/swagger"
    page = await client.get("/schema/swagger")
    assert page.status_code == 200
    html = page.text
    assert "https://" not in html
    assert "http://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/schema/assets/{asset}" in html
        assert (await client.get(f"/schema/assets/{asset}")).status_code == 200


async def test_openapi_documents_every_operation(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    operations = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    expected = {
        ("/counter", "get"),
        ("/counter", "post"),
        ("/counters", "get"),
        ("/counters/{name}", "get"),
        ("/counters/{name}", "post"),
        ("/counters/{name}", "put"),
        ("/counters/{name}", "delete"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
    }
    assert expected <= operations.keys()
    for key in expected:
        op = operations[key]
        assert op.get("operationId"), key
        assert op.get("summary"), key
    for key in expected - {("/health/live", "get")}:
        assert any(code.startswith(("4", "5")) for code in operations[key]["responses"]), key
    post = operations[("/counters/{name}", "post")]
    assert {"400", "409", "422", "503"} <= post["responses"].keys()
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    assert "requestBody" in post
    assert "Idempotent-Replayed" in post["responses"]["200"]["headers"]
    assert operations[("/counters/{name}", "put")]["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"IncrementRequest", "CounterResponse", "ProblemDetails"} <= spec["components"]["schemas"].keys()


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
