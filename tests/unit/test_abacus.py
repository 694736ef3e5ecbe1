"""The `/abacus` routes on the in-memory store: Abacus 1.6.0's bodies (byte for byte), statuses
and headers, with Abacus's own Go tests ported (each named after its Go test, §1.11 of
tests/compat/reference.md)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from entrypoints.http.abacus.answers import go_duration, go_float
from tests.unit.conftest import make_client

GENUINE = (
    b'{"error":"This entry is genuine and does not have an admin key. You cannot delete it. If you'
    b' wanted to delete it, you should have created it with the /create endpoint."}'
)
TOKEN_REQUIRED = (
    b'{"error":"Token is required, please provide a token in the format of a Bearer token header or'
    b' ?token=ADMIN_TOKEN"}'
)
INVALID_TOKEN = b'{"error":"token is invalid"}'
PATTERN_ERROR = b'{"error":"Invalid %s: must match the pattern ^[A-Za-z0-9_\\\\-.]{3,64}$"}'
LENGTH_ERROR = b'{"error":"Invalid %s: length must be between 3 and 64 characters inclusive"}'
VALUE_REQUIRED = b'{"error":"value is required, please provide a number in the fmt of ?value=NEW_VALUE"}'
LAST_NUMBER = re.compile(r"<text[^>]*>(\d+)</text>")
ORIGIN = "https://page.example"


@pytest.fixture
async def api() -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with make_client(InMemoryCounterRepository()) as test_client:
        yield test_client


async def call(api: Any, method: str, path: str, status: int, **options: Any) -> Any:
    response = await api.request(method, f"/abacus{path}", **options)
    assert response.status_code == status, response.text
    return response


async def created(api: Any, path: str) -> dict[str, Any]:
    body: dict[str, Any] = (await call(api, "POST", f"/create/{path}", 201)).json()
    return body


def bearer(token: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def last_count(svg: str) -> int:
    ET.fromstring(svg)  # a well-formed XML document
    return int(LAST_NUMBER.findall(svg)[-1])


# TestCreateView (default, custom init, duplicate)
async def test_create_view(api: Any) -> None:
    response = await call(api, "POST", "/create/test/sample_key", 201)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == ["admin_key", "key", "namespace", "value"]  # sorted, as Go writes a map
    assert (body["key"], body["namespace"], body["value"]) == ("sample_key", "test", 0)
    assert body["admin_key"]
    custom = await created(api, "test/custom_key?initializer=42")
    assert (custom["key"], custom["namespace"], custom["value"]) == ("custom_key", "test", 42)
    await created(api, "test/duplicate_key")
    duplicate = await call(api, "POST", "/create/test/duplicate_key", 409)
    assert duplicate.content == b'{"error":"Key already exists, please use a different key."}'


async def test_create_by_get_in_the_default_namespace_with_a_negative_initializer(api: Any) -> None:
    body = (await call(api, "GET", "/create/solo?initializer=-5", 201)).json()
    assert (body["namespace"], body["key"], body["value"]) == ("default", "solo", -5)
    assert (await call(api, "GET", "/get/default/solo", 200)).json() == {"value": -5}


@pytest.mark.parametrize("initializer", ["", "1.5", "abc", " 1", "9223372036854775808"])
async def test_create_refuses_an_initializer_that_is_no_int64(api: Any, initializer: str) -> None:
    response = await call(api, "POST", f"/create/test/init?initializer={initializer}", 400)
    assert response.content == b'{"error":"initializer must be a number"}'
    await call(api, "GET", "/get/test/init", 404)


# TestCreateRandomView
async def test_create_random_view(api: Any) -> None:
    for path in ("/create", "/create/"):
        body = (await call(api, "POST", f"{path}?initializer=3", 201)).json()
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", body["namespace"])
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", body["key"])
        assert (body["value"], bool(body["admin_key"])) == (3, True)
        got = await call(api, "GET", f"/get/{body['namespace']}/{body['key']}", 200)
        assert got.json() == {"value": 3}


# TestHitView
async def test_hit_view(api: Any) -> None:
    await created(api, "test/hit_key")
    first = await call(api, "GET", "/hit/test/hit_key", 200)
    assert first.content == b'{"value":1}'
    for _ in range(5):
        await call(api, "GET", "/hit/test/hit_key", 200)
    assert (await call(api, "GET", "/hit/test/hit_key", 200)).json() == {"value": 7}


async def test_a_hit_makes_a_missing_key_without_an_admin_key(api: Any) -> None:
    assert (await call(api, "GET", "/hit/site/visits", 200)).json() == {"value": 1}
    info = (await call(api, "GET", "/info/site/visits", 200)).json()
    assert (info["exists"], info["is_genuine"], info["value"], info["expires_str"]) == (
        True,
        True,
        1,
        "4032h0m0s",
    )
    refused = await call(api, "POST", "/set/site/visits?value=9", 400, **bearer("anything"))
    assert refused.content == GENUINE
    assert (await call(api, "GET", "/get/site/visits", 200)).json() == {"value": 1}  # nothing changed


# TestHitShield
async def test_hit_shield(api: Any) -> None:
    await created(api, "test/shield_key")
    response = await call(api, "GET", "/hit/test/shield_key/shield", 200)
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "no-store" in response.headers["cache-control"]
    assert last_count(response.text) == 1
    assert (await call(api, "GET", "/get/test/shield_key", 200)).json() == {"value": 1}


# TestGetView
async def test_get_view(api: Any) -> None:
    missing = await call(api, "GET", "/get/test/nonexistent_key", 404)
    assert missing.content == b'{"error":"Key not found"}'
    await created(api, "test/get_test_key?initializer=100")
    assert (await call(api, "GET", "/get/test/get_test_key", 200)).content == b'{"value":100}'


# TestGetShield
async def test_get_shield(api: Any) -> None:
    missing = await call(api, "GET", "/get/test/nonexistent_shield_key/shield", 404)
    assert missing.content == b'{"error":"Key not found"}'
    await created(api, "test/get_shield_key?initializer=50")
    shield = await call(api, "GET", "/get/test/get_shield_key/shield", 200)
    assert last_count(shield.text) == 50
    assert (await call(api, "GET", "/get/test/get_shield_key", 200)).json() == {"value": 50}  # not counted


async def test_shield_query_maps_onto_the_badge_renderer(api: Any) -> None:
    await created(api, "test/looks?initializer=5")
    plain = (await call(api, "GET", "/get/test/looks/shield", 200)).text
    assert ">counter</text>" in plain
    assert 'fill="#007ec6"' in plain
    styled = await call(
        api, "GET", "/get/test/looks/shield?text=views&bgcolor=%23ff5500&textcolor=000&style=plastic", 200
    )
    assert ">views</text>" in styled.text
    assert 'fill="#ff5500"' in styled.text
    assert 'fill="#000000"' in styled.text
    assert 'height="18"' in styled.text  # the plastic look
    simple = (await call(api, "GET", "/get/test/looks/shield?style=flat-square-simple&font=arial", 200)).text
    assert "counter" not in simple
    assert last_count(simple) == 5
    fallback = (await call(api, "GET", "/get/test/looks/shield?style=neon", 200)).text
    assert fallback == plain


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "bgcolor=",
            b"color cannot be empty (hint: If you are prefixing with a # symbol, remove it and try again)",
        ),
        ("bgcolor=purple", b"'purple' is not a valid hex color (should be like 'fff' or 'ff5500')"),
        ("textcolor=12345", b"'12345' is not a valid hex color (should be like 'fff' or 'ff5500')"),
        ("text=" + "x" * 65, b"text has at most 64 characters"),
    ],
)
async def test_a_bad_shield_query_is_refused_before_counting(api: Any, query: str, message: bytes) -> None:
    await created(api, "test/bad_shield")
    response = await call(api, "GET", f"/hit/test/bad_shield/shield?{query}", 400)
    assert response.content == b'{"error":"' + message + b'"}'
    assert (await call(api, "GET", "/get/test/bad_shield", 200)).json() == {"value": 0}


# TestInfoView
async def test_info_view(api: Any) -> None:
    await created(api, "test/info_key?initializer=150")
    info = await call(api, "GET", "/info/test/info_key", 200)
    assert info.content == (
        b'{"exists":true,"expires_in":14515200,"expires_str":"4032h0m0s","full_key":"K:test:info_key",'
        b'"is_genuine":false,"value":150}'
    )
    missing = await call(api, "GET", "/info/test/nonexistent_info_key", 200)
    assert missing.content == (
        b'{"exists":false,"expires_in":-2e-9,"expires_str":"-2ns","full_key":"K:test:nonexistent_info_key",'
        b'"is_genuine":true,"value":-1}'
    )


async def test_info_of_a_counter_without_expiry(api: Any) -> None:
    await api.post("/namespaces/native/counters/plain")  # the native API: no rules, no expiry
    info = await call(api, "GET", "/info/native/plain", 200)
    assert b'"expires_in":-1e-9,"expires_str":"-1ns"' in info.content
    assert info.json()["value"] == 1


# TestStatsView (upstream seeds its Redis; here the counts come from requests of this app)
async def test_stats_view(api: Any) -> None:
    await created(api, "test/stats_key")
    await call(api, "GET", "/hit/test/stats_key", 200)
    await call(api, "GET", "/hit/test/other", 200)  # makes a key
    await call(api, "GET", "/get/test/stats_key", 200)
    await call(api, "GET", "/hit/test/stats_key/shield", 200)
    await call(api, "GET", "/info/test/stats_key", 200)
    await call(api, "GET", "/hit/stats_key", 308, follow_redirects=False)  # leads to the docs: not counted
    await call(api, "OPTIONS", "/hit/test/stats_key", 204)  # not counted
    first = await call(api, "GET", "/stats", 200)
    body = first.json()
    assert list(body) == sorted(body)
    assert body["commands"] == {"create": 1, "get": 1, "hit": 3, "total": 6}
    assert body["total_keys"] == 2
    assert body["version"] == "1.6.0"
    assert (body["db_version"], body["shard"]) == ("", "")
    assert re.fullmatch(r"[0-9hms.µn]+", body["uptime"])
    second = (await call(api, "GET", "/stats", 200)).json()
    assert second["commands"]["total"] == 7  # the first /stats, not this one


# TestDeleteView (its existence check read a wrong Redis key; here through the API)
async def test_delete_view(api: Any) -> None:
    token = (await created(api, "test/delete_key"))["admin_key"]
    response = await call(api, "POST", "/delete/test/delete_key", 200, **bearer(token))
    assert response.content == b'{"message":"Deleted key: K:test:delete_key","status":"ok"}'
    await call(api, "GET", "/get/test/delete_key", 404)
    assert (await call(api, "GET", "/info/test/delete_key", 200)).json()["exists"] is False
    again = await call(api, "POST", "/delete/test/delete_key", 400, **bearer(token))
    assert again.content == GENUINE  # the admin key went with the counter


# TestSetView
async def test_set_view(api: Any) -> None:
    token = (await created(api, "test/set_key"))["admin_key"]
    response = await call(api, "POST", "/set/test/set_key?value=42", 200, **bearer(token))
    assert response.content == b'{"value":42}'
    assert (await call(api, "GET", "/get/test/set_key", 200)).json() == {"value": 42}


# TestResetView (reset, then a key with no admin key, then no token)
async def test_reset_view(api: Any) -> None:
    token = (await created(api, "test/reset_key?initializer=100"))["admin_key"]
    response = await call(api, "POST", "/reset/test/reset_key", 200, **bearer(token))
    assert response.content == b'{"value":0}'
    assert (await call(api, "GET", "/get/test/reset_key", 200)).json() == {"value": 0}
    other = (await created(api, "test/some_other_key"))["admin_key"]
    genuine = await call(api, "POST", "/reset/test/nonexistent_reset_key", 400, **bearer(other))
    assert genuine.content == GENUINE
    assert (await call(api, "POST", "/reset/test/reset_key", 400)).content == TOKEN_REQUIRED


# TestUpdateByView (T-U2 in the form Abacus answers since its auth stops the route: one body)
async def test_update_by_view(api: Any) -> None:
    token = (await created(api, "test/update_key?initializer=10"))["admin_key"]
    response = await call(api, "POST", "/update/test/update_key?value=15", 200, **bearer(token))
    assert response.content == b'{"value":25}'
    other = (await created(api, "test/wow-some_other_key"))["admin_key"]
    genuine = await call(api, "POST", "/update/test/nonexistent_update_key?value=5", 400, **bearer(other))
    assert genuine.content == GENUINE
    assert (await call(api, "POST", "/update/test/update_key?value=5", 400)).content == TOKEN_REQUIRED
    assert (await call(api, "GET", "/get/test/update_key", 200)).json() == {"value": 25}


async def test_update_subtracts_and_refuses_what_is_no_step(api: Any) -> None:
    token = (await created(api, "test/steps?initializer=10"))["admin_key"]
    assert (await call(api, "POST", "/update/test/steps?value=-3", 200, **bearer(token))).json() == {
        "value": 7
    }
    for query, body in (
        ("", VALUE_REQUIRED),
        ("?value=", VALUE_REQUIRED),
        ("?value=1.5", b'{"error":"value must be a number, this means no floats."}'),
        (
            "?value=0",
            (
                b'{"error":"changing value by 0 does nothing, please provide a non-zero value in the fmt of'
                b' ?value=NEW_VALUE"}'
            ),
        ),
    ):
        assert (await call(api, "POST", f"/update/test/steps{query}", 400, **bearer(token))).content == body
    assert (await call(api, "GET", "/get/test/steps", 200)).json() == {"value": 7}


async def test_set_refuses_a_missing_or_non_numeric_value(api: Any) -> None:
    token = (await created(api, "test/setv?initializer=4"))["admin_key"]
    for query, body in (
        ("", VALUE_REQUIRED),
        ("?value=", VALUE_REQUIRED),
        ("?value=x", b'{"error":"value must be a number"}'),
        ("?value=9223372036854775808", b'{"error":"value must be a number"}'),
    ):
        assert (await call(api, "POST", f"/set/test/setv{query}", 400, **bearer(token))).content == body
    assert (await call(api, "POST", "/set/test/setv?value=-9", 200, **bearer(token))).json() == {"value": -9}


async def test_both_token_transports_and_a_wrong_token(api: Any) -> None:
    token = (await created(api, "test/owned?initializer=1"))["admin_key"]
    assert (await call(api, "POST", f"/set/test/owned?value=2&token={token}", 200)).json() == {"value": 2}
    assert (await call(api, "POST", "/update/test/owned?value=3", 200, **bearer(token))).json() == {
        "value": 5
    }
    wrong = await call(api, "POST", "/set/test/owned?value=9", 401, **bearer("not-the-key"))
    assert wrong.content == INVALID_TOKEN
    assert wrong.headers["www-authenticate"] == "Bearer"
    await call(api, "POST", "/reset/test/owned?token=not-the-key", 401)
    await call(api, "POST", "/set/test/owned?value=9", 401, headers={"Authorization": "Bearer "})
    # Only `Bearer ` exactly is the header's form; anything else falls back to ?token=
    lower = await call(
        api, "POST", "/set/test/owned?value=9", 400, headers={"Authorization": f"bearer {token}"}
    )
    assert lower.content == TOKEN_REQUIRED
    both = {"headers": {"Authorization": f"Basic {token}"}}
    assert (await call(api, "POST", f"/set/test/owned?value=6&token={token}", 200, **both)).json() == {
        "value": 6
    }
    await call(api, "POST", f"/delete/test/owned?token={token}", 200)


async def test_admin_routes_in_the_default_namespace(api: Any) -> None:
    token = (await created(api, "lonely"))["admin_key"]
    assert (await call(api, "POST", "/set/lonely?value=8", 200, **bearer(token))).json() == {"value": 8}
    assert (await call(api, "GET", "/info/lonely", 200)).json()["full_key"] == "K:default:lonely"
    assert (await call(api, "POST", "/reset/lonely", 200, **bearer(token))).json() == {"value": 0}
    assert (await call(api, "POST", "/update/lonely?value=2", 200, **bearer(token))).json() == {"value": 2}
    deleted = await call(api, "POST", "/delete/lonely", 200, **bearer(token))
    assert deleted.json()["message"] == "Deleted key: K:default:lonely"


# utils TestValidate (names of every route, the namespace checked first)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/get/a/abc", LENGTH_ERROR % b"namespace"),
        ("/get/ab/abc", LENGTH_ERROR % b"namespace"),
        ("/get/abc/" + "k" * 72, LENGTH_ERROR % b"key"),
        ("/hit/abc/abc$", PATTERN_ERROR % b"key"),
        ("/hit/abc-123$/abc", PATTERN_ERROR % b"namespace"),
        ("/create/ab/abc$", LENGTH_ERROR % b"namespace"),
        ("/info/abc/%C3%A9%C3%A9", PATTERN_ERROR % b"key"),  # 4 UTF-8 bytes: the pattern's error
        ("/hit/abc/a%C3%A9", PATTERN_ERROR % b"key"),  # 3 bytes
        ("/hit/abc/%C3%A9", LENGTH_ERROR % b"key"),  # 2 bytes
        ("/get/x/abc/shield", LENGTH_ERROR % b"namespace"),
    ],
)
async def test_validate(api: Any, path: str, body: bytes) -> None:
    method = "POST" if path.startswith("/create") else "GET"
    assert (await call(api, method, path, 400)).content == body


@pytest.mark.parametrize("name", ["abc", "a" * 26, "Ab1" * 17 + "x", "a.b-c_d", "x" * 64])
async def test_validate_accepts(api: Any, name: str) -> None:
    assert (await call(api, "GET", f"/hit/{name}/{name}", 200)).json() == {"value": 1}


# utils TestTruncateString and the reserved words: `:HOST:` is the whole Origin, never a valid name
@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b'{"error":"Origin header is required if :HOST: is used"}'),
        ({"Origin": "page.example"}, b'{"error":"Invalid Origin header format"}'),
        ({"Origin": "https://a b"}, b'{"error":"Invalid Origin header format"}'),
        ({"Origin": ORIGIN}, PATTERN_ERROR % b"namespace"),
        ({"Origin": "https://" + "o" * 80}, PATTERN_ERROR % b"namespace"),  # cut to 64, not too long
    ],
)
async def test_host_placeholder_gives_400_as_upstream(api: Any, headers: dict[str, str], body: bytes) -> None:
    assert (await call(api, "GET", "/hit/:HOST:/visits", 400, headers=headers)).content == body


async def test_path_placeholder_reads_the_referer(api: Any) -> None:
    missing = await call(api, "GET", "/get/site/:PATH:", 400)
    assert missing.content == b'{"error":"Referer header is required if :PATH: is used"}'
    present = await call(api, "GET", "/get/site/:PATH:", 400, headers={"Referer": f"{ORIGIN}/post"})
    assert present.content == PATTERN_ERROR % b"key"


# TestGetNamespaceKey: an empty key makes the namespace segment the key in `default`
async def test_get_namespace_key(api: Any) -> None:
    await created(api, "jasoncameron.dev/test")
    info = (await call(api, "GET", "/info/jasoncameron.dev/test", 200)).json()
    assert info["full_key"] == "K:jasoncameron.dev:test"
    alone = (await call(api, "GET", "/info/jasoncameron.dev", 200)).json()
    assert (alone["full_key"], alone["exists"]) == ("K:default:jasoncameron.dev", False)


async def test_a_single_segment_hit_or_get_leads_to_the_docs_with_308(api: Any) -> None:
    for path in ("/hit/foo", "/get/foo", "/docs"):
        response = await call(api, "GET", path, 308, follow_redirects=False)
        assert response.headers["location"] == "/schema/swagger"
    await call(api, "GET", "/get/default/foo", 404)  # nothing was counted


async def test_jsonp_on_hit_and_get(api: Any) -> None:
    hit = await call(api, "GET", "/hit/test/jsonp?callback=cb", 200)
    assert hit.content == b'cb({"value":1});'
    assert hit.headers["content-type"] == "application/javascript; charset=utf-8"
    got = await call(api, "GET", "/get/test/jsonp?callback=window.counter.show", 200)
    assert got.content == b'window.counter.show({"value":1});'
    assert (await call(api, "GET", "/get/test/jsonp?callback=", 200)).content == b'{"value":1}'
    missing = await call(api, "GET", "/get/test/none?callback=cb", 404)  # errors stay plain JSON
    assert missing.content == b'{"error":"Key not found"}'


async def test_a_malformed_callback_is_refused_and_counts_nothing(api: Any) -> None:
    for callback in ("a'b<c", "alert(1)//", "1cb"):
        response = await call(api, "GET", "/hit/test/cbk", 400, params={"callback": callback})
        assert response.content == b'{"error":"Malformed callback"}'
    await call(api, "GET", "/get/test/cbk", 404)


async def test_open_to_any_origin_with_preflight(api: Any) -> None:
    response = await call(api, "GET", "/hit/test/cors", 200, headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == "*"
    refused = await call(api, "GET", "/get/test/none", 404, headers={"Origin": ORIGIN})
    assert refused.headers["access-control-allow-origin"] == "*"
    preflight = await call(
        api,
        "OPTIONS",
        "/set/test/cors",
        204,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.content == b""
    assert {name: preflight.headers[name] for name in preflight.headers if name.startswith("access-")} == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
        "access-control-allow-headers": "Origin,Content-Length,Content-Type,Authorization",
        "access-control-max-age": "43200",
    }


async def test_head_answers_like_get_without_a_body(api: Any) -> None:
    await created(api, "test/heads?initializer=3")
    for path in ("/get/test/heads", "/info/test/heads", "/stats", "/healthcheck", "/get/test/heads/shield"):
        get = await call(api, "GET", path, 200)
        head = await call(api, "HEAD", path, 200)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    assert (await call(api, "HEAD", "/get/test/none", 404)).content == b""
    plain = await call(api, "OPTIONS", "/get/test/heads", 204)  # no preflight: Litestar lists the methods
    assert set(plain.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    created_allow = (await call(api, "OPTIONS", "/create/test/heads", 204)).headers["allow"]
    assert set(created_allow.split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}


async def test_healthcheck(api: Any) -> None:
    body = (await call(api, "GET", "/healthcheck", 200)).json()
    assert list(body) == ["status", "uptime"]
    assert body["status"] == "ok"
    assert re.fullmatch(r"[0-9hm.]+(s|ms|µs|ns)", body["uptime"])


async def test_the_same_counters_as_the_native_api_and_countapi(api: Any) -> None:
    await call(api, "GET", "/hit/shared/page", 200)
    native = await api.get("/namespaces/shared/counters/page")
    assert native.json()["count"] == 1
    await api.post("/namespaces/shared/counters/page")
    assert (await api.get("/countapi/get/shared/page")).json() == {"value": 2}
    assert (await call(api, "GET", "/get/shared/page", 200)).json() == {"value": 2}


async def test_store_errors_stay_problem_details(api: Any) -> None:
    await api.post("/namespaces/big/counters/top", json={"by": 2**63 - 1})
    overflow = await call(api, "GET", "/hit/big/top", 409)
    assert overflow.headers["content-type"].startswith("application/problem+json")


async def test_hits_are_writes_for_the_per_counter_limit() -> None:
    async with make_client(InMemoryCounterRepository(), rate_limit_per_counter_writes="2/minute") as api:
        for _ in range(2):
            await call(api, "GET", "/hit/test/limited", 200)
        await call(api, "GET", "/hit/test/limited/shield", 429)
        await call(api, "GET", "/get/test/limited", 200)  # a read is no write
        await call(api, "GET", "/hit/test/other", 200)  # another counter, another limit


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (-2, "-2ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_000_000_000, "1s"),
        (61_500_000_000, "1m1.5s"),
        (4032 * 3600 * 10**9, "4032h0m0s"),
        (3723_456_789_012, "1h2m3.456789012s"),
    ],
)
def test_durations_are_written_as_go_writes_them(nanoseconds: int, text: str) -> None:
    assert go_duration(nanoseconds) == text


@pytest.mark.parametrize(
    ("number", "text"), [(14515200.0, b"14515200"), (-2e-9, b"-2e-9"), (-1e-9, b"-1e-9"), (1.5, b"1.5")]
)
def test_floats_are_written_as_go_writes_them(number: float, text: bytes) -> None:
    assert bytes(go_float(number)) == text


async def test_open_to_every_origin_when_the_native_api_restricts_origins() -> None:
    allowed = "https://allowed.example"
    async with make_client(InMemoryCounterRepository(), cors_allow_origins=allowed) as api:
        # Another origin gets `*` from these routes; a listed one its own name from the app's CORS.
        for origin, seen in (("https://other.example", "*"), (allowed, allowed)):
            response = await call(api, "GET", "/hit/test/restricted", 200, headers={"Origin": origin})
            assert response.headers.get_list("access-control-allow-origin") == [seen], origin
            assert "access-control-allow-credentials" not in response.headers
        # The app's CORS answers preflights first, for the origins it lists (README).
        preflight = await call(
            api,
            "OPTIONS",
            "/set/test/restricted",
            204,
            headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == allowed
