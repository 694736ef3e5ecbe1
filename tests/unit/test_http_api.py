"""The HTTP contract over the in-memory store: status codes, bodies and headers."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.model import INT64_MAX, INT64_MIN
from tests.unit.conftest import ADMIN_TOKEN, assert_problem, make_client

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_default_counter_starts_at_zero_and_counts_each_post(client: Client) -> None:
    assert (await client.get("/counter")).json() == {
        "namespace": "default",
        "name": "default",
        "count": 0,
        "version": 0,
    }
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


@pytest.mark.parametrize("name", ["-a", "has space", "x" * 65, "_", "ümlaut", ".b", "semi;colon", "a%3Ab"])
async def test_invalid_names_get_400_and_change_nothing(client: Client, name: str) -> None:
    assert_problem(await client.post(f"/counters/{name}"), 400, "invalid")
    assert_problem(await client.get(f"/counters/{name}"), 400)
    assert (await client.get("/counters")).json()["counters"] == []


JSON = {"content-type": "application/json"}
DEEP_ARRAY = b"[" * 2000 + b"]" * 2000  # under 4 KiB; more nesting than Python's recursion limit
DEEP_BY = b'{"by":' + b"[" * 2000 + b"]" * 2000 + b"}"


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b"{not json", 400, "malformed"),
        (b'{"by": "one"}', 400, "by"),
        (b'{"by": "1"}', 400, "by"),  # a string is not an integer, even one of digits
        (b'{"by": 1.5}', 400, "by"),
        (b'{"by": 1.0}', 400, "by"),  # nor is a float, even a whole one
        (b'{"by": 1e0}', 400, "by"),
        (b'{"by": true}', 400, "by"),
        (b'{"by": null}', 400, "by"),
        (b'{"by": 9223372036854775808}', 400, "by"),
        (b'{"by": -9223372036854775809}', 400, "by"),
        (b'{"step": 1}', 400, "step"),
        (b'{"by": 1, "step": 1}', 400, "step"),
        (b'{"by": 1, "by": 2}', 400, "more than once"),  # not "the last one wins"
        (b'{"by": 1, "b\\u0079": 1}', 400, "more than once"),  # the same key, escaped
        (b'{"by": 1} {"by": 2}', 400, "trailing"),
        (b"\xef\xbb\xbf{}", 400, "malformed"),  # a byte order mark (RFC 8259: not to be sent)
        (b" ", 400, "truncated"),
        (DEEP_ARRAY, 400, ""),  # was a RecursionError and a 500
        (DEEP_BY, 400, "by"),
        (b'{"by": 0}', 422, "0"),
        (b'{"by": -0}', 422, "0"),
        (b"[1]", 400, ""),
        (b'"x"', 400, ""),
    ],
)
async def test_bad_bodies_get_4xx_and_change_nothing(
    client: Client, body: bytes, status: int, word: str
) -> None:
    response = await client.post("/counter", content=body, headers=JSON)
    problem = assert_problem(response, status, word)
    if status == 400:
        assert problem["type"].endswith(":invalid-request")
    assert (await client.get("/counter")).json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "by"),
    [(b"null", 1), (b"{}", 1), (b'{"by":3}', 3), (b'{"b\\u0079": 4}', 4), (b' {"by" : -2 }\n', -2)],
)
async def test_strict_bodies_are_taken(client: Client, body: bytes, by: int) -> None:
    response = await client.post("/counters/s", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == by


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/problem+json", "json"],
)
async def test_a_body_that_is_not_declared_json_gets_415(client: Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/counter", content=b'{"by": 2}', headers=headers)
    assert_problem(response, 415, "Content-Type: application/json")
    assert (await client.get("/counter")).json()["count"] == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"]
)
async def test_json_with_parameters_is_taken(client: Client, content_type: str) -> None:
    response = await client.post("/counter", content=b'{"by": 2}', headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2


async def test_no_body_needs_no_content_type(client: Client) -> None:
    assert (await client.post("/counter")).json()["count"] == 1
    assert (await client.post("/counter", headers={"content-type": "text/plain"})).json()["count"] == 2
    assert (await client.post("/counter", content=b"", headers=JSON)).json()["count"] == 3


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


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/counter", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/counters", {"GET", "HEAD", "OPTIONS"}),
        ("/counters/x", {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}),
        ("/health/live", {"GET", "HEAD", "OPTIONS"}),
    ],
)
async def test_options_allows_exactly_the_methods_served(
    client: Client, path: str, methods: set[str]
) -> None:
    response = await client.options(path)
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == methods
    for method in {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"} - methods:
        assert (await client.request(method, path, headers=ADMIN)).status_code == 405, method


async def test_options_of_every_route_lists_its_methods(memory_store: InMemoryCounterRepository) -> None:
    from litestar.routes import HTTPRoute

    async with make_client(memory_store) as client:
        routes = [r for r in client.app.routes if isinstance(r, HTTPRoute) and "{" not in r.path]
        assert routes
        for route in routes:
            response = await client.options(route.path)
            assert set(response.headers["allow"].split(", ")) == route.methods, route.path


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


async def test_spaces_around_an_idempotency_key_are_not_part_of_it(client: Client) -> None:
    first = await client.post("/counters/t", headers=[(b"Idempotency-Key", b"abc")])
    for spaced in (b"abc ", b" abc", b"\tabc \t"):
        again = await client.post("/counters/t", headers=[(b"Idempotency-Key", spaced)])
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    other = await client.post("/counters/t", headers=[(b"Idempotency-Key", b"a bc")])  # inside: kept
    assert "idempotent-replayed" not in other.headers
    assert (await client.get("/counters/t")).json()["count"] == 2


@pytest.mark.parametrize("key", ["", " ", " \t ", "x" * 256, "tab\there", "caf\u00e9"])
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
    put = {**ADMIN, **JSON}
    for body in (b'{"count": "5"}', b'{"count": 5.0}', b'{"count": 1, "count": 2}', DEEP_ARRAY):
        assert_problem(await client.put("/counters/x", content=body, headers=put), 400)
    response = await client.put("/counters/x", content=b'{"count": 5}', headers=ADMIN)
    assert_problem(response, 415, "Content-Type")
    assert (await client.get("/counters/x")).json()["count"] == 0


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


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=%40%40", "cursor=YSBi"])
async def test_listing_with_a_bad_query_gets_400(client: Client, query: str) -> None:
    assert_problem(await client.get(f"/counters?{query}"), 400)


# --- store failures ----------------------------------------------------------------------------


async def test_health(client: Client) -> None:
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    ready = {"status": "ready", "store": "memory", "version": version("counter-web-server")}
    assert (await client.get("/health/ready")).json() == ready


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


async def test_openapi_describes_the_bodies_as_strictly_as_they_are_decoded(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    spec = response.json()
    schemas = spec["components"]["schemas"]
    for name, field in (("IncrementRequest", "by"), ("SetRequest", "count")):
        assert schemas[name]["additionalProperties"] is False, name
        prop = schemas[name]["properties"][field]
        assert (prop["type"], prop["format"]) == ("integer", "int64")
        assert (prop["minimum"], prop["maximum"]) == (INT64_MIN, INT64_MAX)  # exactly, not 2**63 as a float
    assert b'"maximum":9223372036854775807' in response.content
    for path in ("/counter", "/counters/{name}"):
        post = spec["paths"][path]["post"]
        assert post["requestBody"]["required"] is False  # no body: by 1
        assert "IncrementRequest" in str(post["requestBody"]["content"]["application/json"])
        assert {"400", "413", "415", "422"} <= post["responses"].keys()
    put = spec["paths"]["/counters/{name}"]["put"]
    assert put["requestBody"]["required"] is True
    assert {"400", "415"} <= put["responses"].keys()
