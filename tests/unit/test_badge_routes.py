"""The badge routes over HTTP with the in-memory store: reading never counts, hit.svg counts
one per request, the answers cannot be cached, and bad input is a 400 naming the parameter."""

from __future__ import annotations

import email.utils
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, NoReturn

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.errors import StoreUnavailableError
from domain.model import CounterId
from tests.unit.conftest import assert_problem, make_app, make_client

Client = AsyncTestClient[Any]
SVG_NS = "{http://www.w3.org/2000/svg}"
# The default counter, a counter of the namespace default, a counter of another namespace.
COUNTERS = ["/counter", "/counters/visits", "/namespaces/site.example/counters/visits"]
READ_PATHS = [f"{counter}/badge.svg" for counter in COUNTERS]
HIT_PATHS = [f"{counter}/hit.svg" for counter in COUNTERS]
JSON_PATHS = [f"{counter}/shields.json" for counter in COUNTERS]
ALL_PATHS = READ_PATHS + HIT_PATHS + JSON_PATHS


def _counter(path: str) -> str:
    """The API path of the counter a badge path shows."""
    return path.rsplit("/", 1)[0]


def _label(counter: str) -> str:
    """The label a badge of that counter has when the query names none: its key, or "count"."""
    return "count" if counter == "/counter" else counter.rsplit("/", 1)[1]


def title(response: Any) -> str:
    text = ET.fromstring(response.text).findtext(f"{SVG_NS}title")
    assert text is not None
    return text


# Counts are set and read over the HTTP API, not through the store's own methods: the badges
# depend on what the API promises, not on how a store is called.
async def add(client: Client, counter: str, by: int) -> None:
    answer = await client.post(counter, json={"by": by})
    assert answer.status_code == 200, answer.text


async def count(client: Client, counter: str) -> int:
    answer = await client.get(counter)
    assert answer.status_code == 200, answer.text
    value: int = answer.json()["count"]
    return value


@pytest.mark.parametrize("path", READ_PATHS)
async def test_a_read_badge_shows_the_count_and_never_counts(
    memory_store: InMemoryCounterRepository, path: str
) -> None:
    name = _counter(path)
    async with make_client(memory_store) as client:
        await add(client, name, 41)
        for _ in range(3):
            answer = await client.get(path)
            assert answer.status_code == 200, answer.text
            assert title(answer) == f"{_label(name)}: 41"
        head = await client.head(path)
        assert head.status_code == 200
        assert await count(client, name) == 41


@pytest.mark.parametrize("path", HIT_PATHS)
async def test_a_hit_badge_counts_exactly_one_per_request_and_shows_the_new_value(
    memory_store: InMemoryCounterRepository, path: str
) -> None:
    name = _counter(path)
    async with make_client(memory_store) as client:
        await add(client, name, 10)
        seen = [title(await client.get(path, params={"label": "views"})) for _ in range(5)]
        assert seen == [f"views: {n}" for n in range(11, 16)]
        assert await count(client, name) == 15
        head = await client.head(path)  # HEAD is the same request: it counts too
        assert head.status_code == 200
        assert await count(client, name) == 16


@pytest.mark.parametrize("path", ALL_PATHS)
async def test_answers_defeat_caches_and_carry_a_strong_etag_of_the_version_and_the_query(
    memory_store: InMemoryCounterRepository, path: str
) -> None:
    async with make_client(memory_store) as client:
        answer = await client.get(path)
    assert answer.status_code == 200
    headers = answer.headers
    assert headers["cache-control"] == "no-cache, no-store, must-revalidate, max-age=0"
    assert headers["pragma"] == "no-cache"
    assert email.utils.parsedate_to_datetime(headers["expires"]) < datetime.now(UTC)
    etag = headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    version, shape = etag.strip('"').split("-")
    assert version == ("1" if "hit.svg" in path else "0")  # a hit makes the counter
    assert len(shape) == 16
    if path.endswith(".svg"):
        assert headers["content-type"] == "image/svg+xml; charset=utf-8"
    else:
        assert headers["content-type"].startswith("application/json")


async def test_the_etag_changes_with_the_count_and_not_otherwise(
    memory_store: InMemoryCounterRepository,
) -> None:
    async with make_client(memory_store) as client:
        first = (await client.get("/counters/visits/badge.svg")).headers["etag"]
        again = (await client.get("/counters/visits/badge.svg")).headers["etag"]
        await client.post("/counters/visits")
        after = (await client.get("/counters/visits/badge.svg")).headers["etag"]
        styled = (await client.get("/counters/visits/badge.svg?color=red")).headers["etag"]
        await memory_store.set(CounterId.default("visits"), 1)  # the same count, a new state
        set_again = (await client.get("/counters/visits/badge.svg")).headers["etag"]
    assert first == again != after
    assert styled not in (first, after)
    assert set_again not in (first, after)


@pytest.mark.parametrize("path", ALL_PATHS)
async def test_head_answers_the_headers_without_a_body(
    memory_store: InMemoryCounterRepository, path: str
) -> None:
    async with make_client(memory_store) as client:
        got = await client.get(path)
        head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["cache-control"] == got.headers["cache-control"]
    assert int(head.headers["content-length"]) > 0


async def test_options_lists_get_and_head(memory_store: InMemoryCounterRepository) -> None:
    async with make_client(memory_store) as client:
        answer = await client.options("/counters/visits/hit.svg")
    assert answer.status_code == 204
    assert answer.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("path", JSON_PATHS)
async def test_shields_endpoint_json_has_shields_shape_and_never_counts(
    memory_store: InMemoryCounterRepository, path: str
) -> None:
    name = _counter(path)
    async with make_client(memory_store) as client:
        await add(client, name, 1234567)
        plain = (await client.get(path)).json()
        asked = (
            await client.get(path, params={"label": "hits", "color": "#ABC", "format": "grouped"})
        ).json()
        coloured = (await client.get(path, params={"labelColor": "red"})).json()
        cleaned = (await client.get(path, params={"label": "a\tb\x1b"})).json()
        assert await count(client, name) == 1234567
    label = _label(name)
    assert plain == {"schemaVersion": 1, "label": label, "message": "1234567", "color": "blue"}
    assert asked == {"schemaVersion": 1, "label": "hits", "message": "1,234,567", "color": "ABC"}
    assert coloured["labelColor"] == "red"
    assert cleaned["label"] == "ab"


async def test_the_query_shapes_the_badge(memory_store: InMemoryCounterRepository) -> None:
    query = {
        "label": "seen",
        "color": "critical",
        "style": "for-the-badge",
        "prefix": "~",
        "suffix": " times",
        "format": "short",
    }
    async with make_client(memory_store) as client:
        await add(client, "/counters/visits", 1500)
        answer = await client.get("/counters/visits/badge.svg", params={**query, "labelColor": "#123"})
    assert title(answer) == "SEEN: ~1.5K TIMES"
    assert 'fill="#e05d44"' in answer.text
    assert 'fill="#112233"' in answer.text
    assert 'height="28"' in answer.text


async def test_hostile_label_is_escaped(memory_store: InMemoryCounterRepository) -> None:
    hostile = "</text><script>alert(1)</script>"
    async with make_client(memory_store) as client:
        answer = await client.get("/counters/visits/badge.svg", params={"label": hostile})
    assert answer.status_code == 200
    assert "<script" not in answer.text
    assert title(answer) == f"{hostile}: 0"


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"color": "nope"}, "color"),
        ({"color": "#abcd"}, "color"),
        ({"labelColor": "javascript:x"}, "labelColor"),
        ({"style": "round"}, "style"),
        ({"format": "roman"}, "format"),
        ({"label": "x" * 65}, "label"),
        ({"prefix": "x" * 25}, "prefix"),
        ({"suffix": "x" * 25}, "suffix"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/counters/visits/badge.svg", "/counter/hit.svg", "/counters/visits/shields.json"]
)
async def test_bad_query_is_a_400_naming_the_parameter_and_counts_nothing(
    memory_store: InMemoryCounterRepository, path: str, params: dict[str, str], parameter: str
) -> None:
    async with make_client(memory_store) as client:
        answer = await client.get(path, params=params)
        assert_problem(answer, 400, f"{parameter}:")
        assert await count(client, _counter(path)) == 0


@pytest.mark.parametrize("kind", ["badge.svg", "hit.svg", "shields.json"])
@pytest.mark.parametrize(
    "counter", ["/counters/-b", "/namespaces/-b/counters/visits", "/namespaces/site/counters/-b"]
)
async def test_a_bad_name_is_a_400(memory_store: InMemoryCounterRepository, kind: str, counter: str) -> None:
    async with make_client(memory_store) as client:
        answer = await client.get(f"{counter}/{kind}")
    assert_problem(answer, 400, "-b")


class DownStore:
    """A store whose every read and write finds it down."""

    async def get(self, *_: Any, **__: Any) -> NoReturn:
        raise StoreUnavailableError("redis at 10.0.0.7:6379 refused the connection", retry_after=2)

    async def increment(self, *_: Any, **__: Any) -> NoReturn:
        raise StoreUnavailableError("redis at 10.0.0.7:6379 refused the connection", retry_after=2)


@pytest.mark.parametrize("path", ALL_PATHS)
async def test_a_store_that_is_down_is_a_503_with_retry_after(path: str) -> None:
    async with make_client(DownStore()) as client:
        answer = await client.get(path)
    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "2"
    assert "10.0.0.7" not in answer.text


def test_the_openapi_document_says_which_get_writes() -> None:
    paths = make_app(InMemoryCounterRepository()).openapi_schema.to_schema()["paths"]
    for path in (
        "/counter/hit.svg",
        "/counters/{name}/hit.svg",
        "/namespaces/{namespace}/counters/{key}/hit.svg",
    ):
        operation = paths[path]["get"]
        assert "This GET writes" in operation["description"]
        assert "image/svg+xml; charset=utf-8" in operation["responses"]["200"]["content"]
        assert "Cache-Control" in operation["responses"]["200"]["headers"]
    for path in (
        "/counter/badge.svg",
        "/counters/{name}/badge.svg",
        "/namespaces/{namespace}/counters/{key}/badge.svg",
    ):
        assert "never counts" in paths[path]["get"]["description"]
    parameters = {p["name"] for p in paths["/counters/{name}/badge.svg"]["get"]["parameters"]}
    assert {"name", "label", "color", "labelColor", "style", "prefix", "suffix", "format"} <= parameters
    namespaced = paths["/namespaces/{namespace}/counters/{key}/badge.svg"]["get"]
    assert {"namespace", "key", "label"} <= {p["name"] for p in namespaced["parameters"]}
    assert namespaced["operationId"] == "namespaceCounterBadge"
