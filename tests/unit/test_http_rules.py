"""Counters created explicitly, with rules, through the native API (in-memory store)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from tests.unit.conftest import ADMIN_TOKEN, assert_problem

Client = AsyncTestClient[Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PATH = "/namespaces/blog/counters"


async def test_create_answers_201_with_the_rules_and_the_admin_key_once(
    client: Client, memory_store: InMemoryCounterRepository
) -> None:
    body = {"key": "post", "count": 5, "min_step": -1, "max_step": 3, "resettable": True, "ttl_seconds": 60}
    created = await client.post(PATH, json=body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["namespace"], answer["name"], answer["count"]) == ("blog", "post", 5)
    assert answer["rules"] == {"min_step": -1, "max_step": 3, "resettable": True, "ttl_seconds": 60}
    assert "expires_at" in answer
    key = answer["admin_key"]
    stored = await memory_store.get(CounterId("blog", "post"))
    assert stored.admin_key_hash == hashlib.sha256(key.encode()).hexdigest()
    read = (await client.get(f"{PATH}/post")).json()
    assert read["rules"] == answer["rules"]
    assert "admin_key" not in read
    assert "expires_at" in read


async def test_create_twice_is_409_and_bad_rules_are_refused(client: Client) -> None:
    assert (await client.post(PATH, json={"key": "once"})).status_code == 201
    body = assert_problem(await client.post(PATH, json={"key": "once", "count": 9}), 409, "exists")
    assert body["type"].endswith("counter-exists")
    assert (await client.get(f"{PATH}/once")).json()["count"] == 0
    assert (await client.post(PATH, json={"key": "bad", "min_step": 1})).status_code == 400
    assert (await client.post(PATH, json={"key": "bad", "ttl_seconds": 0})).status_code == 400
    assert (await client.post(PATH, json={"key": "bad", "extra": 1})).status_code == 400
    assert (await client.get(f"{PATH}/bad")).json()["count"] == 0


async def test_an_increment_outside_the_range_is_403_and_changes_nothing(client: Client) -> None:
    await client.post(PATH, json={"key": "steps", "min_step": 0, "max_step": 1})
    refused = await client.post(f"{PATH}/steps", json={"by": 2})
    assert assert_problem(refused, 403, "steps")["type"].endswith("step-out-of-range")
    assert (await client.post(f"{PATH}/steps", json={"by": -1})).status_code == 403
    assert (await client.post(f"{PATH}/steps")).json()["count"] == 1
    assert (await client.get(f"{PATH}/steps")).json()["count"] == 1


async def test_the_counter_admin_key_sets_and_deletes_that_counter_only(client: Client) -> None:
    key = (await client.post(PATH, json={"key": "mine"})).json()["admin_key"]
    await client.post(PATH, json={"key": "other"})
    mine = {"Authorization": f"Bearer {key}"}
    put = await client.put(f"{PATH}/mine", json={"count": 7}, headers=mine)
    assert (put.status_code, put.json()["count"], put.json()["previous"]) == (200, 7, 0)
    assert (await client.put(f"{PATH}/other", json={"count": 7}, headers=mine)).status_code == 401
    assert (await client.put(f"{PATH}/mine", json={"count": 8})).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert (await client.delete(f"{PATH}/mine", headers=wrong)).status_code == 401
    assert (await client.get(f"{PATH}/mine")).json()["count"] == 7
    deleted = await client.delete(f"{PATH}/mine", headers=mine)
    assert (deleted.status_code, deleted.json()["count"]) == (200, 7)
    assert (await client.delete(f"{PATH}/other", headers=ADMIN)).status_code == 200


async def test_a_resettable_counter_is_set_by_anyone_but_deleted_by_its_key(client: Client) -> None:
    answer = (await client.post(PATH, json={"key": "open", "resettable": True, "admin_key": False})).json()
    assert "admin_key" not in answer
    assert (await client.put(f"{PATH}/open", json={"count": 3})).json()["count"] == 3
    assert (await client.delete(f"{PATH}/open")).status_code == 401
    assert (await client.get(f"{PATH}/open")).json()["count"] == 3


@pytest.mark.parametrize("route", ["/counters/plain", "/namespaces/default/counters/plain"])
async def test_a_counter_a_hit_made_still_needs_the_admin_token(client: Client, route: str) -> None:
    await client.post(route)
    assert "rules" not in (await client.get(route)).json()
    assert (await client.put(route, json={"count": 3})).status_code == 401
    assert (await client.put(route, json={"count": 3}, headers=ADMIN)).json()["count"] == 3
