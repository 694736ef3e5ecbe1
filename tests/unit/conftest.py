from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

ADMIN_TOKEN = "s3cret-admin-token"


@pytest.fixture
def memory_store() -> InMemoryCounterRepository:
    return InMemoryCounterRepository()


def make_client(store: InMemoryCounterRepository, **settings: object) -> AsyncTestClient:  # type: ignore[type-arg]
    config = Settings(**{"backend": "memory", "access_log": True, **settings})  # type: ignore[arg-type]
    container = build_container(config)
    # The store is swapped on the container, the way production wires it: no monkeypatching.
    container.repository.override(providers.Object(store))
    return AsyncTestClient(app=create_app(container=container, settings=config))


@pytest.fixture(params=[True, False], ids=["fast-path", "framework"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Every HTTP test runs twice: increments on the fast path (the default) and on the
    framework's handlers (COUNTER_FAST_PATH=false); both must give the same answers."""
    value: bool = request.param
    return value


@pytest.fixture
async def client(memory_store: InMemoryCounterRepository, fast_path: bool) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with make_client(memory_store, admin_token=ADMIN_TOKEN, fast_path=fast_path) as test_client:
        yield test_client
