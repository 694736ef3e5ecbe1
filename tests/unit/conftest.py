from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from entrypoints.container import build_container
from entrypoints.http.app import CounterApp, create_app
from entrypoints.settings import Settings

ADMIN_TOKEN = "s3cret-admin-token"


@pytest.fixture
def memory_store() -> InMemoryCounterRepository:
    return InMemoryCounterRepository()


def make_app(store: object, *, litestar: dict[str, Any] | None = None, **settings: object) -> CounterApp:
    """The app on `store`; `litestar` options (middleware, guards, cors_config...) go to Litestar."""
    config = Settings(**{"backend": "memory", "access_log": True, **settings})  # type: ignore[arg-type]
    container = build_container(config)
    # The store is swapped on the container, the way production wires it: no monkeypatching.
    container.repository.override(providers.Object(store))
    return create_app(container=container, settings=config, **(litestar or {}))


def make_client(
    store: object, *, litestar: dict[str, Any] | None = None, **settings: object
) -> AsyncTestClient:  # type: ignore[type-arg]
    return AsyncTestClient(app=make_app(store, litestar=litestar, **settings))


@pytest.fixture(params=[True, False], ids=["lean-layer", "handler"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Every HTTP test runs twice: increments answered by the routes' lean layer (the default)
    and by the handlers' full pipeline (COUNTER_FAST_PATH=false); both must answer the same."""
    value: bool = request.param
    return value


@pytest.fixture
async def client(memory_store: InMemoryCounterRepository, fast_path: bool) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with make_client(memory_store, admin_token=ADMIN_TOKEN, fast_path=fast_path) as test_client:
        yield test_client


def assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    """`response` is problem details with `status`, whose detail holds `words`, and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    for word in words:
        assert word in body["detail"], body
    assert "Traceback" not in response.text
    return body
