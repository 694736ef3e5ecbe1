"""The composition root: which store, built from which settings.

Nothing here connects at import time. Stores are `Resource`s inside a `Selector`: calling
`container.repository()` opens only the selected one, and `shutdown_resources()` closes it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from dependency_injector import containers, providers

from adapters.memory import InMemoryCounterRepository
from adapters.memory_changes import open_memory_changes
from domain.changes import CounterChanges
from domain.ports import CounterRepository
from domain.services import CounterService
from entrypoints.observability.metrics import Metrics
from entrypoints.observability.repository import instrument_repository
from entrypoints.observability.tracing import Tracing
from entrypoints.settings import Settings


async def open_memory_repository() -> AsyncIterator[InMemoryCounterRepository]:
    yield InMemoryCounterRepository()


def _lazy(module: str, opener: str) -> Callable[..., AsyncIterator[Any]]:
    """An adapter's opener, imported only when its store is selected: a SQLite service never
    pays for importing the Kubernetes client, in start-up time or in memory."""

    async def open_selected(**options: Any) -> AsyncIterator[Any]:
        open_repository = getattr(importlib.import_module(module), opener)
        async with asynccontextmanager(open_repository)(**options) as repository:
            yield repository

    open_selected.__name__ = opener
    return open_selected


open_sqlite_repository = _lazy("adapters.sqlite", "open_sqlite_repository")
open_redis_repository = _lazy("adapters.redis", "open_redis_repository")
open_configmap_repository = _lazy("adapters.configmap", "open_configmap_repository")
open_sqlite_changes = _lazy("adapters.sqlite_changes", "open_sqlite_changes")
open_redis_changes = _lazy("adapters.redis.changes", "open_redis_changes")
open_configmap_changes = _lazy("adapters.configmap.changes", "open_configmap_changes")


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    repository = providers.Selector(
        config.backend,
        memory=providers.Resource(open_memory_repository),
        sqlite=providers.Resource(
            open_sqlite_repository,
            path=config.sqlite_path,
            lock_timeout_seconds=config.sqlite_lock_timeout_seconds,
        ),
        redis=providers.Resource(open_redis_repository, url=config.redis_url, prefix=config.redis_prefix),
        configmap=providers.Resource(
            open_configmap_repository,
            name=config.configmap_name,
            namespace=config.configmap_namespace,
            kubeconfig=config.kubeconfig,
            coalesce=config.configmap_coalesce,
            max_writes_per_second=config.configmap_max_writes_per_second,
        ),
    )

    # Each store's own signal of changes, for the live updates; none watches anything until a
    # stream subscribes.
    changes = providers.Selector(
        config.backend,
        memory=providers.Resource(open_memory_changes, repository=repository),
        sqlite=providers.Resource(
            open_sqlite_changes,
            path=config.sqlite_path,
            poll_interval_seconds=config.events_poll_interval_seconds,
            repository=repository,
        ),
        redis=providers.Resource(
            open_redis_changes, url=config.redis_url, prefix=config.redis_prefix, repository=repository
        ),
        configmap=providers.Resource(
            open_configmap_changes, repository=repository, kubeconfig=config.kubeconfig
        ),
    )

    metrics = providers.Singleton(Metrics, store=config.backend)
    tracing = providers.Singleton(Tracing.from_env)  # tests override it with their own exporter
    # Every store measured (and traced) the same way, by decorating the port: no adapter knows.
    instrumented_repository = providers.Singleton(
        instrument_repository, repository, metrics=metrics, tracing=tracing, store=config.backend
    )

    counter_service = providers.Singleton(
        CounterService,
        repository=instrumented_repository,
        idempotency_ttl_seconds=config.idempotency_ttl_seconds,
    )


def build_container(settings: Settings) -> Container:
    container = Container()
    values = settings.as_dict()
    # Empty means "find it": the adapter looks at the pod's service account, then the kubeconfig.
    values["configmap_namespace"] = settings.configmap_namespace or None
    values["kubeconfig"] = settings.kubeconfig or None
    container.config.from_dict(values)
    return container


T = TypeVar("T")


async def _provided(provider: Any, expected: type[T]) -> T:
    """What `provider` gives, awaited when an async Resource is behind it (a test that has
    overridden the store with an object gets a plain value; both are fine)."""
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, expected):
        raise TypeError(f"the container provided {type(value).__name__}, not {expected.__name__}")
    return value


async def start_service(container: Container) -> CounterService:
    """Open the selected store and build the service on it."""
    return await _provided(container.counter_service, CounterService)


async def start_changes(container: Container) -> CounterChanges:
    """Open the selected store's change signal (after `start_service`: it shares the store)."""
    return await _provided(container.changes, CounterChanges)  # type: ignore[type-abstract]


__all__ = ["Container", "CounterRepository", "build_container", "start_changes", "start_service"]
