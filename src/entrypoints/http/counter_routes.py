"""One counter's routes, once: read, increment, set and delete, served under `/counters/{name}`
(a key of the namespace `default`) and `/namespaces/{namespace}/counters/{key}`.

One set of handlers (`_OneCounter`) takes the counter from a dependency (`counter_id`), which
each path's controller makes from its own path parameters; each controller also says how its
operation ids and summaries read. The increment's lean layer (increment_route.py) reads the path
parameters itself, the same way."""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Request, Response, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from domain.model import CounterId
from domain.services import CounterService
from entrypoints.http.auth import require_admin_or_counter_key
from entrypoints.http.controllers import (
    ADMIN_ERRORS,
    ADMIN_SECURITY,
    INCREMENT_ERRORS,
    NAME_ERRORS,
    REPLAYED_HEADERS,
    SET_ERRORS,
    STORE_ERRORS,
    CounterNameParam,
    ExactAllowController,
    IdempotencyKey,
    IncrementHandler,
    deleted_response,
    incremented,
    replaced_response,
)
from entrypoints.http.increment_route import IncrementRoute
from entrypoints.http.namespaced import KeyParam, NamespaceParam
from entrypoints.http.openapi import DocumentedOperation, OptionalBodyOperation
from entrypoints.http.schemas import (
    CounterResponse,
    IncrementRequest,
    ReplacedResponse,
    SetRequest,
    counter_response,
)


class _OneCounter(ExactAllowController):
    """The handlers of one counter. A subclass sets `path`, the `counter_id` dependency, and
    `noun` and `where`, which fill `{noun}` in the operation ids and `{where}` in the summaries."""

    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)
    noun: ClassVar[str]
    where: ClassVar[str]

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        handlers = super().get_route_handlers()  # copies of the class's handlers, this controller's own
        for handler in handlers:
            if isinstance(handler, HTTPRouteHandler):
                if isinstance(handler.operation_id, str):
                    handler.operation_id = handler.operation_id.format(noun=self.noun)
                if handler.summary is not None:
                    handler.summary = handler.summary.format(where=self.where)
        return handlers

    @get(
        operation_id="get{noun}",
        operation_class=DocumentedOperation,
        summary="Read a counter{where}",
        responses={**STORE_ERRORS, **NAME_ERRORS},
    )
    async def get_counter(
        self, counter_service: NamedDependency[CounterService], counter_id: NamedDependency[CounterId]
    ) -> CounterResponse:
        """Returns the counter; 0 before its first increment."""
        return counter_response(await counter_service.get(counter_id))

    @IncrementHandler(
        http_method="POST",
        operation_id="increment{noun}",
        summary="Increment a counter{where}",
        status_code=HTTP_200_OK,
        responses=INCREMENT_ERRORS,
        response_headers=REPLAYED_HEADERS,
        middleware=[IncrementRoute],
        operation_class=OptionalBodyOperation,
    )
    async def increment_counter(
        self,
        counter_service: NamedDependency[CounterService],
        counter_id: NamedDependency[CounterId],
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[IncrementRequest | None] = None,
    ) -> Response[CounterResponse]:
        """Adds `by` (default 1; negative decrements) atomically and returns the new value."""
        by = 1 if data is None else data.by
        return incremented(await counter_service.increment(counter_id, by, idempotency_key))

    @put(
        operation_id="set{noun}",
        operation_class=DocumentedOperation,
        summary="Set a counter{where} (admin)",
        security=ADMIN_SECURITY,
        responses=SET_ERRORS,
    )
    async def set_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        counter_id: NamedDependency[CounterId],
        data: JSONBody[SetRequest],
    ) -> ReplacedResponse:
        """Sets the counter to `count` and returns the new value with the previous one. Takes the
        admin token, the counter's own admin key, or nothing when the counter is resettable."""
        await require_admin_or_counter_key(request, counter_service, counter_id, reset=True)
        return replaced_response(await counter_service.set(counter_id, data.count))

    @delete(
        operation_id="delete{noun}",
        operation_class=DocumentedOperation,
        summary="Delete a counter{where} (admin)",
        status_code=HTTP_200_OK,
        security=ADMIN_SECURITY,
        responses=ADMIN_ERRORS,
    )
    async def delete_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        counter_id: NamedDependency[CounterId],
    ) -> CounterResponse:
        """Removes the counter (it reads 0 afterwards) and returns its last value. Takes the
        admin token or the counter's own admin key."""
        await require_admin_or_counter_key(request, counter_service, counter_id, reset=False)
        return deleted_response(counter_id, await counter_service.delete(counter_id))


def _named(name: CounterNameParam) -> CounterId:
    return CounterId.default(name)


def _namespaced(namespace: NamespaceParam, key: KeyParam) -> CounterId:
    return CounterId(namespace, key)


class NamedCounterRoutes(_OneCounter):
    """A named counter of the namespace `default`."""

    path = "/counters/{name:str}"
    dependencies = {"counter_id": Provide(_named, sync_to_thread=False)}  # noqa: RUF012
    noun = "Counter"
    where = ""


class NamespaceCounterRoutes(_OneCounter):
    """A counter of a namespace."""

    path = "/namespaces/{namespace:str}/counters/{key:str}"
    dependencies = {"counter_id": Provide(_namespaced, sync_to_thread=False)}  # noqa: RUF012
    noun = "NamespaceCounter"
    where = " of a namespace"


ONE_COUNTER_CONTROLLERS = [NamedCounterRoutes, NamespaceCounterRoutes]
