"""The namespaced routes over the in-memory store, and the old routes as the namespace `default`."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from tests.unit.conftest import ADMIN_TOKEN, assert_problem

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}


async def test_the_old_routes_are_the_namespace_default(client: Client) -> None:
    assert (await client.post("/counter")).json()["count"] == 1
    assert (await client.post("/counters/visits", json={"by": 4})).json() == {
        **(await client.get("/counters/visits")).json(),
        "namespace": "default",
        "name": "visits",
        "count": 4,
    }
    assert (await client.get("/namespaces/default/counters/default")).json()["count"] == 1
    assert (await client.post("/namespaces/default/counters/visits")).json()["count"] == 5
    assert (await client.get("/counters/visits")).json()["count"] == 5
    listed = (await client.get("/namespaces/default/counters")).json()
    assert listed == (await client.get("/counters")).json()
    assert [(c["namespace"], c["name"]) for c in listed["counters"]] == [
        ("default", "default"),
        ("default", "visits"),
    ]


async def test_a_key_in_two_namespaces_is_two_counters(
    client: Client, memory_store: InMemoryCounterRepository
) -> None:
    one = await client.post("/namespaces/blog/counters/visits", json={"by": 2}, headers=JSON)
    assert (one.status_code, one.json()["namespace"], one.json()["name"], one.json()["count"]) == (
        200,
        "blog",
        "visits",
        2,
    )
    await client.post("/namespaces/shop/counters/visits")
    assert (await client.get("/namespaces/blog/counters/visits")).json()["count"] == 2
    assert (await client.get("/namespaces/shop/counters/visits")).json()["count"] == 1
    assert (await client.get("/counters/visits")).json()["count"] == 0
    assert (await client.get("/counters")).json()["counters"] == []
    assert (await memory_store.get(CounterId("blog", "visits"))).count == 2


@pytest.mark.parametrize("name", [".abc", "_abc", "-abc", "x" * 64, "a", "_idempotency", "..."])
async def test_countapi_names_are_served_in_every_position(client: Client, name: str) -> None:
    for path in (f"/namespaces/{name}/counters/k", f"/namespaces/ns/counters/{name}", f"/counters/{name}"):
        assert (await client.post(path)).json()["count"] == 1, path
        assert (await client.get(path)).json()["count"] == 1, path
        assert (await client.head(path)).status_code == 200, path


async def test_listing_a_namespace_is_sorted_by_key_and_paged(client: Client) -> None:
    for key in ("b", "_cc", "a", "-dd"):
        await client.post(f"/namespaces/blog/counters/{key}")
    await client.post("/namespaces/shop/counters/zz")
    first = (await client.get("/namespaces/blog/counters?limit=3")).json()
    assert [c["name"] for c in first["counters"]] == ["-dd", "_cc", "a"]
    rest = (await client.get(f"/namespaces/blog/counters?limit=3&cursor={first['next_cursor']}")).json()
    assert ([c["name"] for c in rest["counters"]], rest["next_cursor"]) == (["b"], None)
    assert (await client.get("/namespaces/empty/counters")).json() == {"counters": [], "next_cursor": None}
    assert (await client.head("/namespaces/blog/counters")).status_code == 200


async def test_admin_routes_of_a_namespace(client: Client) -> None:
    path = "/namespaces/blog/counters/visits"
    assert (await client.put(path, json={"count": 5})).status_code == 401
    replaced = (await client.put(path, json={"count": 5}, headers=ADMIN)).json()
    assert {k: replaced[k] for k in ("namespace", "name", "count", "previous")} == {
        "namespace": "blog",
        "name": "visits",
        "count": 5,
        "previous": 0,
    }
    assert (await client.delete(path)).status_code == 401
    deleted = (await client.delete(path, headers=ADMIN)).json()
    assert (deleted["namespace"], deleted["count"]) == ("blog", 5)
    assert (await client.delete(path, headers=ADMIN)).json() == {
        "namespace": "blog",
        "name": "visits",
        "count": 0,
        "version": 0,
    }
    allow = (await client.options(path)).headers["allow"]
    assert allow == "DELETE, GET, HEAD, OPTIONS, POST, PUT"


async def test_an_idempotency_key_reused_in_another_namespace_is_refused(client: Client) -> None:
    headers = {"Idempotency-Key": "order-1"}
    assert (await client.post("/namespaces/a/counters/c", headers=headers)).status_code == 200
    replay = await client.post("/namespaces/a/counters/c", headers=headers)
    assert (replay.headers["idempotent-replayed"], replay.json()["namespace"]) == ("true", "a")
    assert_problem(await client.post("/namespaces/b/counters/c", headers=headers), 422)
    assert (await client.get("/namespaces/b/counters/c")).json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("/namespaces/a%20b/counters/k", "namespace"),
        ("/namespaces/-a/counters/k", "namespace"),
        ("/namespaces/ns/counters/-a", "key"),
        ("/namespaces/ns/counters/" + "x" * 65, "key"),
        ("/namespaces/" + "x" * 65 + "/counters", "namespace"),
        ("/counters/_", "key"),
    ],
)
async def test_invalid_names_get_400_naming_the_part(client: Client, path: str, part: str) -> None:
    methods = ["GET"] if path.endswith("/counters") else ["GET", "POST", "PUT", "DELETE"]
    for method in methods:
        body = {"count": 1} if method == "PUT" else None
        response = await client.request(method, path, json=body, headers=ADMIN)
        problem = assert_problem(response, 400, f"counter {part} ")
        assert problem["type"].endswith("invalid-counter-name"), problem
    assert (await client.get("/namespaces/ns/counters")).json()["counters"] == []


async def test_metrics_name_the_route_template_never_a_namespace_or_a_key(client: Client) -> None:
    for namespace in ("blog-ns-1", "blog-ns-2"):
        await client.post(f"/namespaces/{namespace}/counters/secret-key")
        await client.get(f"/namespaces/{namespace}/counters/secret-key")
    await client.get("/namespaces/blog-ns-1/counters")
    text = (await client.get("/metrics")).text
    assert 'route="/namespaces/{namespace}/counters/{key}"' in text
    assert 'route="/namespaces/{namespace}/counters"' in text
    assert "blog-ns" not in text
    assert "secret-key" not in text
