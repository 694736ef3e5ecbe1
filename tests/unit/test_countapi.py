"""The `/countapi` routes on the in-memory store: CountAPI's bodies, statuses and headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from tests.unit.conftest import make_client

INFO_FIELDS = {
    "namespace",
    "key",
    "ttl",
    "created",
    "update_lowerbound",
    "update_upperbound",
    "enable_reset",
    "value",
}


@pytest.fixture
async def api() -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with make_client(InMemoryCounterRepository()) as test_client:
        yield test_client


async def call(api: Any, path: str, status: int, **headers: str) -> Any:
    response = await api.get(f"/countapi{path}", headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["access-control-allow-origin"] == "*"
    return response


async def test_hit_creates_a_key_with_steps_zero_to_one_and_no_reset(api: Any) -> None:
    first = await call(api, "/hit/visits", 200)
    assert first.json() == {"value": 1}
    assert first.headers["x-path"] == "default/visits"
    assert (await call(api, "/hit/visits", 200)).json() == {"value": 2}
    info = (await call(api, "/info/visits", 200)).json()
    assert info.keys() == INFO_FIELDS
    assert (info["update_lowerbound"], info["update_upperbound"], info["enable_reset"]) == (0, 1, False)
    assert (await call(api, "/update/visits?amount=2", 403)).json() == {"value": 2}
    assert (await call(api, "/set/visits?value=9", 403)).json() == {"old_value": 2, "value": 2}
    assert (await call(api, "/get/visits", 200)).json() == {"value": 2}


async def test_two_segments_name_the_namespace(api: Any) -> None:
    response = await call(api, "/hit/site/page", 200)
    assert response.headers["x-path"] == "site/page"
    assert (await call(api, "/get/site/page", 200)).json() == {"value": 1}
    assert (await call(api, "/get/page", 404)).json() == {"value": None}


async def test_missing_keys_answer_404_with_null_fields_and_are_not_created(api: Any) -> None:
    assert (await call(api, "/get/nothing", 404)).json() == {"value": None}
    assert (await call(api, "/update/nothing?amount=1", 404)).json() == {"value": None}
    assert (await call(api, "/set/nothing?value=1", 404)).json() == {"old_value": None, "value": None}
    info = await call(api, "/info/nothing", 404)
    assert info.json() == dict.fromkeys(INFO_FIELDS)
    assert info.headers["x-path"] == "default/nothing"
    await call(api, "/get/nothing", 404)


async def test_create_with_bounds_reset_and_value(api: Any) -> None:
    before = int(time.time() * 1000)
    query = "namespace=app&key=clicks&value=10&enable_reset=1&update_lowerbound=-5&update_upperbound=20"
    created = await call(api, f"/create?{query}", 200)
    assert created.json() == {"namespace": "app", "key": "clicks", "value": 10}
    assert created.headers["x-path"] == "app/clicks"
    assert (await call(api, "/update/app/clicks?amount=20", 200)).json() == {"value": 30}
    assert (await call(api, "/update/app/clicks?amount=-5", 200)).json() == {"value": 25}
    assert (await call(api, "/update/app/clicks?amount=21", 403)).json() == {"value": 25}
    assert (await call(api, "/update/app/clicks?amount=-6", 403)).json() == {"value": 25}
    assert (await call(api, "/update/app/clicks?amount=0", 200)).json() == {"value": 25}
    assert (await call(api, "/set/app/clicks?value=3", 200)).json() == {"old_value": 25, "value": 3}
    info = (await call(api, "/info/app/clicks?namespace=app", 200)).json()
    assert (info["namespace"], info["key"], info["value"]) == ("app", "clicks", 3)
    assert (info["update_lowerbound"], info["update_upperbound"], info["enable_reset"]) == (-5, 20, True)
    assert before <= info["created"] <= int(time.time() * 1000)
    # six months, in milliseconds
    assert 15_769_000_000 < info["ttl"] <= 15_770_000_000


async def test_create_defaults_to_a_new_uuid_in_default_with_bounds_minus_one_to_one(api: Any) -> None:
    body = (await call(api, "/create?enable_reset=true", 200)).json()
    assert (body["namespace"], body["value"], len(body["key"])) == ("default", 0, 36)
    info = (await call(api, f"/info/{body['key']}", 200)).json()
    assert (info["update_lowerbound"], info["update_upperbound"], info["enable_reset"]) == (-1, 1, True)
    other = (await call(api, "/create", 200)).json()
    assert other["key"] != body["key"]


async def test_create_an_existing_key_is_409_with_null_fields(api: Any) -> None:
    await call(api, "/create?key=taken", 200)
    response = await api.get("/countapi/create?key=taken&value=5")
    assert response.status_code == 409
    assert response.json() == {"namespace": None, "key": None, "value": None}
    assert (await call(api, "/get/taken", 200)).json() == {"value": 0}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/create?key=aa", "Malformed Namespace/Key"),
        ("/create?namespace=aa", "Malformed Namespace/Key"),
        ("/create?key=a%24b%24c", "Malformed Namespace/Key"),
        ("/create?update_upperbound=-1", "update_upperbound must be positive"),
        ("/create?update_lowerbound=1", "update_lowerbound must be negative"),
        ("/create?value=x", "value must be an integer"),
        ("/create?enable_reset=maybe", "enable_reset must be"),
        ("/hit/ab", "Malformed Namespace/Key"),
        ("/get/ab/test", "Malformed Namespace/Key"),
        ("/info/test/x", "Malformed Namespace/Key"),
        ("/update/test?amount=1.5", "amount must be an integer"),
        ("/update/test", "amount must be an integer"),
        ("/update/test?amount=1_0", "amount must be an integer"),
        ("/update/test?amount=%201", "amount must be an integer"),
        ("/set/test", "value must be an integer"),
        ("/set/test?value=99999999999999999999", "value must be an integer from"),
    ],
)
async def test_invalid_requests_answer_400_with_an_error(api: Any, path: str, message: str) -> None:
    body = (await call(api, path, 400)).json()
    assert body.keys() == {"error"}
    assert message in body["error"]


async def test_placeholders_take_names_from_origin_and_referer(api: Any) -> None:
    response = await call(
        api, "/hit/:HOST:/:PATHNAME:", 200, Origin="https://my.site.com", Referer="https://my.site.com/a/b-c"
    )
    assert response.headers["x-path"] == "my.site.com/ab-c"
    referer_only = await call(api, "/hit/:HOST:/page", 200, Referer="http://other.org:8080/x")
    assert referer_only.headers["x-path"] == "other.org/page"
    # neither header: the Host header's name, and dots for the missing path
    fallback = await call(api, "/hit/:HOST:/:PATHNAME:", 200, Host="example.net:9000")
    assert fallback.headers["x-path"] == "example.net/..."
    short = await call(api, "/hit/:HOST:/:PATHNAME:", 200, Referer="https://ab/q")
    assert short.headers["x-path"] == ".ab/..q"


async def test_jsonp_wraps_the_body_with_the_status_and_answers_200(api: Any) -> None:
    response = await api.get("/countapi/get/missing?callback=window.cb_1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.text == 'window.cb_1({"value":null,"status":404});'
    await call(api, "/hit/jsonp", 200)
    assert (await api.get("/countapi/get/jsonp?callback=$")).text == '$({"value":1,"status":200});'


@pytest.mark.parametrize("callback", ["1x", "a-b", "alert(1)", "a" * 65, ""])
async def test_an_invalid_callback_is_refused(api: Any, callback: str) -> None:
    response = await call(api, f"/get/test?callback={callback}", 400)
    assert response.json() == {"error": "Malformed callback"}


async def test_stats_counts_requests_created_and_updated_keys(api: Any) -> None:
    await call(api, "/create?key=one", 200)
    await call(api, "/hit/two", 200)
    await call(api, "/hit/two", 200)
    await call(api, "/update/two?amount=5", 403)
    response = await call(api, "/stats", 200)
    body = response.json()
    assert body.keys() == {"keys_created", "keys_updated", "requests", "version"}
    assert (body["keys_created"], body["keys_updated"], body["requests"]) == (2, 2, 5)
    assert isinstance(body["version"], str)
    assert body["version"]


async def test_preflight_is_open_to_any_origin_without_credentials(api: Any) -> None:
    response = await api.options(
        "/countapi/hit/test",
        headers={"Origin": "https://anywhere.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    hit = await call(api, "/hit/test", 200, Origin="https://anywhere.example")
    assert hit.headers["access-control-expose-headers"] == "X-Path"
    assert "access-control-allow-credentials" not in hit.headers


async def test_native_counters_are_the_same_counters(api: Any) -> None:
    await call(api, "/hit/shared", 200)
    native = await api.get("/namespaces/default/counters/shared")
    assert native.json()["count"] == 1


async def test_plain_gets_stay_open_when_the_native_api_restricts_origins() -> None:
    async with make_client(InMemoryCounterRepository(), cors_allow_origins="https://allowed.example") as api:
        response = await call(api, "/hit/test", 200, Origin="https://other.example")
        assert "access-control-allow-credentials" not in response.headers
