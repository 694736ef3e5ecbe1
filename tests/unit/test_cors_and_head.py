"""CORS from the settings (Litestar's CORSConfig), and HEAD on every GET route."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from entrypoints.http.rate_limit import UNLIMITED_ROUTES
from entrypoints.settings import Settings, SettingsError
from tests.unit.conftest import assert_problem, make_client

Client = AsyncTestClient[Any]
ALLOWED = "https://app.example"
REFUSED = "https://elsewhere.example"
INCREMENT_PATHS = ["/counter", "/counters/visits"]


def preflight(
    origin: str, method: str = "POST", headers: str = "content-type, idempotency-key"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.mark.parametrize("path", INCREMENT_PATHS)
async def test_a_preflight_from_an_allowed_origin_is_allowed(
    memory_store: InMemoryCounterRepository, fast_path: bool, path: str
) -> None:
    async with make_client(memory_store, cors_allow_origins=ALLOWED, fast_path=fast_path) as client:
        answer = await client.options(path, headers=preflight(ALLOWED))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    allowed_methods = set(answer.headers["access-control-allow-methods"].split(", "))
    assert allowed_methods == {"GET", "HEAD", "POST", "PUT", "DELETE"}
    allowed_headers = {h.lower() for h in answer.headers["access-control-allow-headers"].split(", ")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed_headers
    assert answer.headers["vary"] == "Origin"
    assert (
        await memory_store.get(CounterId.default(path.rsplit("/", 1)[-1].replace("counter", "default")))
    ).count == 0


@pytest.mark.parametrize("path", INCREMENT_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        preflight(REFUSED),
        preflight(ALLOWED, method="PATCH"),
        preflight(ALLOWED, headers="x-secret-header"),
    ],
    ids=["origin", "method", "header"],
)
async def test_a_preflight_from_a_refused_origin_method_or_header_is_refused(
    memory_store: InMemoryCounterRepository, path: str, headers: dict[str, str]
) -> None:
    async with make_client(memory_store, cors_allow_origins=ALLOWED) as client:
        answer = await client.options(path, headers=headers)
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("path", INCREMENT_PATHS)
async def test_answers_to_an_allowed_origin_expose_the_headers_a_page_needs(
    memory_store: InMemoryCounterRepository, fast_path: bool, path: str
) -> None:
    settings: dict[str, Any] = {
        "cors_allow_origins": f"{ALLOWED},http://localhost:3000",
        "rate_limit_per_client": "5/minute",
    }
    async with make_client(memory_store, fast_path=fast_path, **settings) as client:
        counted = await client.post(path, headers={"Origin": ALLOWED, "Idempotency-Key": "k1"})
        refused = await client.post(path, headers={"Origin": REFUSED})
    assert counted.status_code == 200
    assert counted.headers["access-control-allow-origin"] == ALLOWED
    exposed = set(counted.headers["access-control-expose-headers"].split(", "))
    assert {"ETag", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} <= exposed
    assert {"X-Request-ID", "Idempotent-Replayed"} <= exposed
    # A request from another origin is served (CORS is the browser's rule), but not shared.
    assert refused.status_code == 200
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_is_off_by_default(memory_store: InMemoryCounterRepository) -> None:
    assert Settings().cors_allow_origins == ""
    async with make_client(memory_store) as client:
        answer = await client.options("/counter", headers=preflight(ALLOWED))
        posted = await client.post("/counter", headers={"Origin": ALLOWED})
    assert answer.status_code == 204  # the route's own OPTIONS, not a CORS answer
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in posted.headers


async def test_any_origin(memory_store: InMemoryCounterRepository) -> None:
    async with make_client(memory_store, cors_allow_origins="*") as client:
        answer = await client.options("/counters/x", headers=preflight(REFUSED))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("COUNTER_CORS_ALLOW_ORIGINS", "https://app.example/", "is not an origin"),
        ("COUNTER_CORS_ALLOW_ORIGINS", "app.example", "is not an origin"),
        ("COUNTER_CORS_ALLOW_ORIGINS", "https://app.example:443", "the port only if it is not"),
        ("COUNTER_CORS_ALLOW_ORIGINS", "ftp://app.example", "is not an origin"),
        ("COUNTER_CORS_ALLOW_ORIGINS", "*,https://app.example", "give it alone"),
        ("COUNTER_CORS_ALLOW_METHODS", "GET,FETCH", "'FETCH' is not one of GET"),
        ("COUNTER_CORS_ALLOW_HEADERS", "Content-Type,Bad Header", "'Bad Header' is not a header name"),
    ],
)
def test_a_wrong_cors_setting_names_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert words in str(raised.value)


def test_cors_settings_are_kept_in_one_form() -> None:
    settings = Settings.from_env(
        {
            "COUNTER_CORS_ALLOW_ORIGINS": " HTTPS://App.Example , http://localhost:3000,",
            "COUNTER_CORS_ALLOW_METHODS": "get, post",
        }
    )
    assert settings.cors_allow_origins == "https://app.example,http://localhost:3000"
    assert settings.cors_allow_methods == "GET,POST"


# --- HEAD --------------------------------------------------------------------------------------


async def test_head_answers_every_get_route_of_the_openapi_document_without_a_body(
    memory_store: InMemoryCounterRepository, fast_path: bool
) -> None:
    async with make_client(memory_store, fast_path=fast_path) as client:
        await client.post("/counters/visits")
        document = (await client.get("/schema/openapi.json")).json()
        get_paths = [
            path
            for path, operations in document["paths"].items()
            if "get" in operations and not path.startswith("/abacus/")  # see test_abacus.py
        ]
        assert len(get_paths) == 19  # 7 of the API, 9 of the badges, 3 of live updates
        assert not any("head" in operations for operations in document["paths"].values())
        # A stream has no end to compare; test_events.py checks its HEAD.
        for template in (path for path in get_paths if not path.endswith("/events")):
            path = template.replace("{name}", "visits").replace("{key}", "visits")
            path = path.replace("{namespace}", "default")
            got, head = await client.get(path), await client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            assert got.content, path
            varying = {"x-request-id", "date"} | ({"etag"} if path.endswith("hit.svg") else set())
            assert {k: v for k, v in head.headers.items() if k not in varying} == {
                k: v for k, v in got.headers.items() if k not in varying
            }, path
            assert head.headers["content-length"] == str(len(got.content))
            allow = (await client.options(path)).headers["allow"].split(", ")
            assert "HEAD" in allow, path


async def test_head_answers_errors_like_get_without_a_body(memory_store: InMemoryCounterRepository) -> None:
    async with make_client(memory_store) as client:
        bad_name = await client.head("/counters/bad%20name")
        bad_query = await client.head("/counters?limit=0")
        docs = await client.head("/docs", follow_redirects=False)
        for answer, status in ((bad_name, 400), (bad_query, 400)):
            assert answer.status_code == status
            assert answer.content == b""
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert int(answer.headers["content-length"]) > 0  # the length of the body a GET gets
        assert_problem(await client.get("/counters/bad%20name"), 400)
    assert docs.status_code == 302
    assert docs.headers["location"] == "/schema/swagger"


async def test_every_get_route_of_the_app_serves_head(memory_store: InMemoryCounterRepository) -> None:
    from litestar.routes import HTTPRoute

    async with make_client(memory_store) as client:
        routes = [r for r in client.app.routes if isinstance(r, HTTPRoute) and "GET" in r.methods]
        assert len(routes) > 8  # the API, the docs, the OpenAPI document, the assets
        assert [r.path for r in routes if "HEAD" not in r.methods] == []
        for path in ("/schema/openapi.json", "/schema/swagger", "/schema/openapi.yaml"):
            got, head = await client.get(path), await client.head(path)
            assert (head.status_code, head.content) == (200, b""), path
            assert head.headers["content-length"] == str(len(got.content)), path


async def test_the_openapi_document_describes_429_on_every_limited_operation(
    memory_store: InMemoryCounterRepository,
) -> None:
    async with make_client(memory_store) as client:
        document = (await client.get("/schema/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            unlimited = re.match(UNLIMITED_ROUTES, path) is not None
            assert ("429" in operation["responses"]) != unlimited, (method, path)
