"""Counters of every namespace: `/namespaces/{namespace}/counters[/{key}]`.

The same operations, bodies, answers and authorization as `/counters[/{name}]`, which serve the
namespace `default` (controllers.py); the increment passes through the same lean route layer
(increment_route.py), which reads `{namespace}` and `{key}` from the path."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK

from domain.model import NAME_RULE, CounterId
from domain.services import CounterService
from entrypoints.http.auth import require_admin
from entrypoints.http.controllers import (
    ADMIN_ERRORS,
    ADMIN_SECURITY,
    INCREMENT_ERRORS,
    LIST_ERRORS,
    NAME_ERRORS,
    NAME_SCHEMA,
    REPLAYED_HEADERS,
    SET_ERRORS,
    STORE_ERRORS,
    ExactAllowController,
    IdempotencyKey,
    IncrementHandler,
    counter_page,
    decode_cursor,
    deleted_response,
    incremented,
    replaced_response,
)
from entrypoints.http.increment_route import IncrementRoute
from entrypoints.http.openapi import DocumentedOperation, OptionalBodyOperation
from entrypoints.http.schemas import (
    CURSOR_PATTERN,
    CounterPage,
    CounterResponse,
    IncrementRequest,
    ReplacedResponse,
    SetRequest,
    counter_response,
)

NamespaceParam = Annotated[
    str, PathParameter(description=f"The counter's namespace: {NAME_RULE}.", schema_extra=NAME_SCHEMA)
]
KeyParam = Annotated[
    str,
    PathParameter(description=f"The counter's key in its namespace: {NAME_RULE}.", schema_extra=NAME_SCHEMA),
]


class NamespaceCounterController(ExactAllowController):
    """Counters named by a namespace and a key."""

    path = "/namespaces/{namespace:str}/counters"
    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)

    @get(
        operation_id="listNamespaceCounters",
        operation_class=DocumentedOperation,
        summary="List the counters of a namespace by key",
        responses=LIST_ERRORS,
    )
    async def list_counters(
        self,
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size (1-1000).")] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(description="`next_cursor` of the previous page.", pattern=CURSOR_PATTERN),
        ] = None,
    ) -> CounterPage:
        """Returns the namespace's counters sorted by key, a page at a time (none: an empty page)."""
        return counter_page(await counter_service.list(namespace, decode_cursor(cursor), limit))

    @get(
        "/{key:str}",
        operation_id="getNamespaceCounter",
        operation_class=DocumentedOperation,
        summary="Read a counter of a namespace",
        responses={**STORE_ERRORS, **NAME_ERRORS},
    )
    async def get_counter(
        self, counter_service: NamedDependency[CounterService], namespace: NamespaceParam, key: KeyParam
    ) -> CounterResponse:
        """Returns the counter; 0 before its first increment."""
        return counter_response(await counter_service.get(CounterId(namespace, key)))

    @IncrementHandler(
        "/{key:str}",
        http_method="POST",
        operation_id="incrementNamespaceCounter",
        summary="Increment a counter of a namespace",
        status_code=HTTP_200_OK,
        responses=INCREMENT_ERRORS,
        response_headers=REPLAYED_HEADERS,
        middleware=[IncrementRoute],
        operation_class=OptionalBodyOperation,
    )
    async def increment_counter(
        self,
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        key: KeyParam,
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[IncrementRequest | None] = None,
    ) -> Response[CounterResponse]:
        """Adds `by` (default 1; negative decrements) atomically and returns the new value."""
        by = 1 if data is None else data.by
        return incremented(await counter_service.increment(CounterId(namespace, key), by, idempotency_key))

    @put(
        "/{key:str}",
        operation_id="setNamespaceCounter",
        operation_class=DocumentedOperation,
        summary="Set a counter of a namespace (admin)",
        guards=[require_admin],
        security=ADMIN_SECURITY,
        responses=SET_ERRORS,
    )
    async def set_counter(
        self,
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        key: KeyParam,
        data: JSONBody[SetRequest],
    ) -> ReplacedResponse:
        """Sets the counter to `count` and returns the new value with the previous one."""
        return replaced_response(await counter_service.set(CounterId(namespace, key), data.count))

    @delete(
        "/{key:str}",
        operation_id="deleteNamespaceCounter",
        operation_class=DocumentedOperation,
        summary="Delete a counter of a namespace (admin)",
        status_code=HTTP_200_OK,
        guards=[require_admin],
        security=ADMIN_SECURITY,
        responses=ADMIN_ERRORS,
    )
    async def delete_counter(
        self, counter_service: NamedDependency[CounterService], namespace: NamespaceParam, key: KeyParam
    ) -> CounterResponse:
        """Removes the counter (it reads 0 afterwards) and returns its last value."""
        counter = CounterId(namespace, key)
        return deleted_response(counter, await counter_service.delete(counter))
