"""Versions over HTTP: `version` in the native bodies, the ETag of every answer about one
counter, `If-Match` on set and delete (compare-and-set, 412), `If-None-Match` on reads (304)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.unit.conftest import ADMIN_TOKEN, assert_problem

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PATHS = ["/counters/visits", "/namespaces/blog/counters/visits"]


def _tag(response: Any) -> str:
    tag: str = response.headers["etag"]
    return tag


@pytest.mark.parametrize("path", PATHS)
async def test_every_answer_about_a_counter_carries_its_version_as_a_strong_etag(
    client: Client, path: str
) -> None:
    missing = await client.get(path)
    assert (missing.json()["version"], _tag(missing)) == (0, '"0"')
    first = await client.post(path)
    assert (first.json()["version"], _tag(first)) == (1, '"1"')
    second = await client.post(path, json={"by": 5})
    assert (second.json()["count"], second.json()["version"], _tag(second)) == (6, 2, '"2"')
    read = await client.get(path)
    assert (read.json()["version"], _tag(read)) == (2, '"2"')
    assert _tag(await client.head(path)) == '"2"'
    replaced = await client.put(path, json={"count": 40}, headers=ADMIN)
    assert (replaced.json()["version"], _tag(replaced)) == (3, '"3"')
    deleted = await client.delete(path, headers=ADMIN)
    assert (deleted.json()["count"], deleted.json()["version"], _tag(deleted)) == (40, 3, '"3"')
    assert _tag(await client.get(path)) == '"0"'


async def test_the_default_counter_a_replay_and_a_create_carry_it_too(client: Client) -> None:
    assert _tag(await client.post("/counter")) == '"1"'
    assert _tag(await client.get("/counter")) == '"1"'
    keyed = {"Idempotency-Key": "k-1"}
    first = await client.post("/counters/c", headers=keyed)
    await client.post("/counters/c")
    replay = await client.post("/counters/c", headers=keyed)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (replay.json()["version"], _tag(replay)) == (1, _tag(first))
    created = await client.post("/namespaces/ns/counters", json={"key": "made", "count": 3})
    assert created.status_code == 201
    assert (created.json()["version"], _tag(created)) == (1, '"1"')
    listed = (await client.get("/namespaces/ns/counters")).json()["counters"]
    assert [(c["name"], c["version"]) for c in listed] == [("made", 1)]


@pytest.mark.parametrize("path", PATHS)
async def test_a_set_with_a_stale_if_match_is_412_and_changes_nothing(client: Client, path: str) -> None:
    stale = _tag(await client.post(path))
    current = _tag(await client.post(path))
    refused = await client.put(path, json={"count": 100}, headers={**ADMIN, "If-Match": stale})
    body = assert_problem(refused, 412, "version 2", "not 1")
    assert body["type"].endswith(":version-mismatch")
    assert body["title"] == "Version mismatch"
    assert _tag(refused) == current
    assert (await client.get(path)).json()["count"] == 2
    applied = await client.put(path, json={"count": 100}, headers={**ADMIN, "If-Match": current})
    assert (applied.status_code, applied.json()["count"], _tag(applied)) == (200, 100, '"3"')


@pytest.mark.parametrize("path", PATHS)
async def test_a_delete_with_a_stale_if_match_is_412_and_keeps_the_counter(client: Client, path: str) -> None:
    stale = _tag(await client.post(path))
    await client.post(path)
    refused = await client.delete(path, headers={**ADMIN, "If-Match": stale})
    assert_problem(refused, 412)
    assert (await client.get(path)).json()["count"] == 2
    deleted = await client.delete(path, headers={**ADMIN, "If-Match": f'"7", {_tag(refused)}'})
    assert (deleted.status_code, deleted.json()["count"]) == (200, 2)
    assert (await client.get(path)).json()["version"] == 0


async def test_if_match_star_means_it_exists_and_0_that_it_does_not(client: Client) -> None:
    path = "/counters/star"
    assert_problem(await client.put(path, json={"count": 1}, headers={**ADMIN, "If-Match": "*"}), 412)
    assert_problem(await client.delete(path, headers={**ADMIN, "If-Match": "*"}), 412)
    assert (await client.get(path)).json()["version"] == 0
    made = await client.put(path, json={"count": 1}, headers={**ADMIN, "If-Match": '"0"'})
    assert (made.status_code, _tag(made)) == (200, '"1"')
    assert_problem(await client.put(path, json={"count": 2}, headers={**ADMIN, "If-Match": '"0"'}), 412)
    again = await client.put(path, json={"count": 2}, headers={**ADMIN, "If-Match": "*"})
    assert (again.status_code, again.json()["count"]) == (200, 2)


async def test_weak_and_foreign_tags_never_match(client: Client) -> None:
    path = "/counters/weak"
    tag = _tag(await client.post(path))
    for header in (f"W/{tag}", '"01"', '"x"', '"1-abc"', "", " , "):  # an empty list names none
        refused = await client.put(path, json={"count": 9}, headers={**ADMIN, "If-Match": header})
        assert_problem(refused, 412)
    assert (await client.get(path)).json()["count"] == 1


@pytest.mark.parametrize("header", ["1", '"1', "**", '"1" "2"', '*, "1"', "W/1", '"a"b'])
async def test_a_malformed_if_match_is_400_naming_the_header_and_changes_nothing(
    client: Client, header: str
) -> None:
    path = "/counters/malformed"
    await client.post(path)
    assert_problem(
        await client.put(path, json={"count": 9}, headers={**ADMIN, "If-Match": header}), 400, "If-Match"
    )
    assert_problem(await client.delete(path, headers={**ADMIN, "If-Match": header}), 400, "If-Match")
    assert (await client.get(path)).json()["count"] == 1


async def test_if_none_match_answers_304_while_the_version_holds(client: Client) -> None:
    path = "/namespaces/blog/counters/read"
    tag = _tag(await client.post(path))
    for header in (tag, f"W/{tag}", f'"9", {tag}', "*"):
        unchanged = await client.get(path, headers={"If-None-Match": header})
        assert (unchanged.status_code, unchanged.content, _tag(unchanged)) == (304, b"", tag)
    await client.post(path)
    changed = await client.get(path, headers={"If-None-Match": tag})
    assert (changed.status_code, changed.json()["count"]) == (200, 2)
    assert (await client.get("/counters/none", headers={"If-None-Match": "*"})).status_code == 200
    assert (await client.get(path, headers={"If-None-Match": ""})).status_code == 200
    assert (await client.get("/counter", headers={"If-None-Match": '"0"'})).status_code == 304
    assert_problem(await client.get(path, headers={"If-None-Match": "nope"}), 400, "If-None-Match")
