"""A change made with a counter's own admin key (or because it is resettable) lands only on the
counter it was judged on, over the native and the Abacus routes, whatever the store.

The service reads the counter, judges the caller on it, then writes. `Interleaved` runs another
request's work at exactly the worst point, inside the store's set or delete, before the write: the
counter deleted and made again by someone else with another key (which starts it again at the
same version), or merely incremented. The write must refuse the counter made again, which keeps
the new owner's state, and must still land after an increment.

A test module subclasses `OwnerRaceContract` and provides the fixture `store`: a store of its
own, open and empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar

from domain.model import Counter, CounterId, Replaced
from domain.ports import CounterRepository
from domain.rules import Rules, hash_admin_key, new_admin_key
from domain.services import OWNER_ATTEMPTS
from tests.unit.conftest import ADMIN_TOKEN, make_app

Client = httpx.AsyncClient
BASE = "http://testserver.local"
COUNTER = CounterId("races", "owned")
NATIVE = f"/namespaces/{COUNTER.namespace}/counters/{COUNTER.key}"
ABACUS = f"{COUNTER.namespace}/{COUNTER.key}"


class Interleaved:
    """`inner`, with `meanwhile` run right before each of the next `times` sets and deletes
    reach it: what another request does between the service's check and its write."""

    def __init__(self, inner: CounterRepository) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], Awaitable[object]] | None = None
        self.times = 0
        self.writes = 0  # the sets and deletes that reached the store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def arm(self, meanwhile: Callable[[], Awaitable[object]], times: int = 1) -> None:
        self.meanwhile, self.times = meanwhile, times

    async def set(
        self,
        counter: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        await self._interleave()
        return await self.inner.set(counter, count, expected_version, expected_created_at)

    async def delete(
        self,
        counter: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        await self._interleave()
        return await self.inner.delete(counter, expected_version, expected_created_at)

    async def _interleave(self) -> None:
        self.writes += 1
        if self.meanwhile is not None and self.times > 0:
            self.times -= 1
            await self.meanwhile()


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan, entered and left by one task of its own (a fixture's setup and
    teardown run in different tasks, which the lifespan's cancel scopes refuse)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # the start-up failed: its error
    try:
        yield
    finally:
        stop.set()
        await task


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class OwnerRaceContract:
    @pytest.fixture
    def interleaved(self, store: CounterRepository) -> Interleaved:
        return Interleaved(store)

    @pytest.fixture
    async def client(self, interleaved: Interleaved) -> AsyncIterator[Client]:
        """The app on the store, served in the test's own event loop: a store such as Redis
        works on the loop that opened it, which Litestar's test client does not run on."""
        app = make_app(interleaved, admin_token=ADMIN_TOKEN)
        async with (
            _lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http,
        ):
            yield http

    async def _owned(self, store: CounterRepository, *, resettable: bool = False) -> str:
        """The counter at 5, made by its first owner; that owner's admin key."""
        key, key_hash = new_admin_key()
        await store.create(COUNTER, 5, Rules(resettable=resettable), key_hash)
        return key

    def _made_again(self, store: CounterRepository) -> Callable[[], Awaitable[object]]:
        """Someone deletes the counter and makes it again at 7 with a key of their own."""

        async def made_again() -> None:
            await store.delete(COUNTER)
            await store.create(COUNTER, 7, Rules(), new_admin_key()[1])

        return made_again

    async def _kept_by_the_new_owner(self, store: CounterRepository, first_key: str) -> None:
        read = await store.get(COUNTER)
        assert read.count == 7
        assert read.version == 1
        assert read.admin_key_hash is not None
        assert read.admin_key_hash != hash_admin_key(first_key)

    # --- the counter deleted and made again by someone else: the write does not land ----------

    @pytest.mark.parametrize("route", ["set", "reset"])
    async def test_native_set_with_the_old_key_leaves_the_new_counter(
        self, client: Client, store: CounterRepository, interleaved: Interleaved, route: str
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(self._made_again(store))
        count = 9 if route == "set" else 0
        answer = await client.put(NATIVE, json={"count": count}, headers=_bearer(key))
        assert answer.status_code == 403, answer.text
        assert interleaved.times == 0  # the other request did run between check and write
        await self._kept_by_the_new_owner(store, key)

    async def test_native_reset_of_a_resettable_counter_leaves_the_new_one(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        """No key: the counter's rules allowed the reset; the counter made again is not resettable."""
        key = await self._owned(store, resettable=True)
        interleaved.arm(self._made_again(store))
        answer = await client.put(NATIVE, json={"count": 0})
        assert answer.status_code == 403, answer.text
        await self._kept_by_the_new_owner(store, key)

    async def test_native_delete_with_the_old_key_leaves_the_new_counter(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(self._made_again(store))
        answer = await client.delete(NATIVE, headers=_bearer(key))
        assert answer.status_code == 403, answer.text
        await self._kept_by_the_new_owner(store, key)

    @pytest.mark.parametrize("route", ["set", "reset", "delete"])
    async def test_abacus_admin_route_with_the_old_key_leaves_the_new_counter(
        self, client: Client, store: CounterRepository, interleaved: Interleaved, route: str
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(self._made_again(store))
        answer = await client.post(f"/abacus/{route}/{ABACUS}?value=9", headers=_bearer(key))
        assert answer.status_code == 401, answer.text  # Abacus's answer to a key not the counter's
        assert answer.json() == {"error": "token is invalid"}
        await self._kept_by_the_new_owner(store, key)

    # --- only incremented meanwhile: same counter, same owner, the write lands ----------------

    async def test_native_set_and_delete_land_after_an_increment_meanwhile(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(lambda: store.increment(COUNTER, 1))
        answer = await client.put(NATIVE, json={"count": 0}, headers=_bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["previous"] == 6  # the increment was there first
        assert (await store.get(COUNTER)).count == 0
        interleaved.arm(lambda: store.increment(COUNTER, 1))
        answer = await client.delete(NATIVE, headers=_bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["count"] == 1
        assert not (await store.get(COUNTER)).exists

    async def test_an_owner_if_match_star_is_judged_again_after_an_increment(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        """The version read no longer holds; `*` still allows the one read next, so it lands."""
        key = await self._owned(store)
        interleaved.arm(lambda: store.increment(COUNTER, 1))
        answer = await client.put(NATIVE, json={"count": 0}, headers={**_bearer(key), "If-Match": "*"})
        assert answer.status_code == 200, answer.text
        assert interleaved.writes == 2  # refused once, then applied
        assert (await store.get(COUNTER)).count == 0

    async def test_an_owner_if_match_of_one_version_is_412_after_an_increment(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(lambda: store.increment(COUNTER, 1))
        answer = await client.put(NATIVE, json={"count": 0}, headers={**_bearer(key), "If-Match": '"1"'})
        assert answer.status_code == 412, answer.text
        read = await store.get(COUNTER)
        assert (read.count, read.version) == (6, 2)

    @pytest.mark.parametrize("route", ["set", "reset", "delete"])
    async def test_abacus_admin_route_lands_after_an_increment_meanwhile(
        self, client: Client, store: CounterRepository, interleaved: Interleaved, route: str
    ) -> None:
        key = await self._owned(store)
        interleaved.arm(lambda: store.increment(COUNTER, 1))
        answer = await client.post(f"/abacus/{route}/{ABACUS}?value=9", headers=_bearer(key))
        assert answer.status_code == 200, answer.text
        read = await store.get(COUNTER)
        expected = {"set": (True, 9), "reset": (True, 0), "delete": (False, 0)}[route]
        assert (read.exists, read.count) == expected

    async def test_a_counter_made_again_and_still_open_is_judged_again_a_bounded_number_of_times(
        self, client: Client, store: CounterRepository, interleaved: Interleaved
    ) -> None:
        """Each counter made again is resettable, so each time the reset is allowed again; the
        service gives up after a few tries, and none of its writes lands."""
        await self._owned(store, resettable=True)

        async def made_again_resettable() -> None:
            await store.delete(COUNTER)
            await store.create(COUNTER, 7, Rules(resettable=True), None)

        interleaved.arm(made_again_resettable, times=100)
        answer = await client.put(NATIVE, json={"count": 0})
        assert answer.status_code == 403, answer.text
        assert interleaved.writes == OWNER_ATTEMPTS
        assert (await store.get(COUNTER)).count == 7
