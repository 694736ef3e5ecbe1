"""Counters of every namespace: `/namespaces/{namespace}/counters[/{key}]`.

The same operations, bodies, answers and authorization as `/counters[/{name}]`, which serve the
namespace `default` (controllers.py); the increment passes through the same lean route layer
(increment_route.py), which reads `{namespace}` and `{key}` from the path."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from domain.model import NAME_RULE, CounterId
from domain.rules import Rules
from domain.services import CounterService
from entrypoints.http.auth import require_admin_or_counter_key
from entrypoints.http.controllers import (
    ADMIN_ERRORS,
    ADMIN_SECURITY,
    BODY_ERRORS,
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
    problem,
    replaced_response,
)
from entrypoints.http.increment_route import IncrementRoute
from entrypoints.http.openapi import DocumentedOperation, OptionalBodyOperation
from entrypoints.http.schemas import (
    CURSOR_PATTERN,
    CounterPage,
    CounterResponse,
    CreatedResponse,
    CreateRequest,
    IncrementRequest,
    ReplacedResponse,
    SetRequest,
    counter_response,
    created_response,
)

NamespaceParam = Annotated[
    str, PathParameter(description=f"The counter's namespace: {NAME_RULE}.", schema_extra=NAME_SCHEMA)
]
CREATE_ERRORS = {
    **STORE_ERRORS,
    **BODY_ERRORS,
    503: STORE_ERRORS[503],
    400: problem(
        "Invalid namespace or key, or a body that is not strictly `CreateRequest` (malformed JSON,"
        " a key given twice, an unknown field, a value of the wrong type or out of its range)."
    ),
    409: problem("Type `...:counter-exists`: the counter exists (and has not expired); nothing changed."),
    422: problem("The rules are invalid (a bound of the wrong sign, a ttl out of range)."),
    507: problem("The store has no room for a new counter."),
}
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

    @post(
        operation_id="createNamespaceCounter",
        operation_class=DocumentedOperation,
        summary="Create a counter of a namespace with its rules",
        status_code=HTTP_201_CREATED,
        responses=CREATE_ERRORS,
    )
    async def create_counter(
        self,
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        data: JSONBody[CreateRequest],
    ) -> CreatedResponse:
        """Creates the counter at `count` with rules fixed for its lifetime (delete it and create
        it again to change them): the range of one increment, whether anyone may set it, an
        expiry pushed forward by each write. The answer holds, this once, its own admin key."""
        rules = Rules(
            min_step=data.min_step,
            max_step=data.max_step,
            resettable=data.resettable,
            ttl_seconds=data.ttl_seconds,
        )
        counter, admin_key = await counter_service.create(
            CounterId(namespace, data.key), data.count, rules, admin_key=data.admin_key
        )
        return created_response(counter, admin_key)

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
        security=ADMIN_SECURITY,
        responses=SET_ERRORS,
    )
    async def set_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        key: KeyParam,
        data: JSONBody[SetRequest],
    ) -> ReplacedResponse:
        """Sets the counter to `count` and returns the new value with the previous one. Takes the
        admin token, the counter's own admin key, or nothing when the counter is resettable."""
        counter = CounterId(namespace, key)
        await require_admin_or_counter_key(request, counter_service, counter, reset=True)
        return replaced_response(await counter_service.set(counter, data.count))

    @delete(
        "/{key:str}",
        operation_id="deleteNamespaceCounter",
        operation_class=DocumentedOperation,
        summary="Delete a counter of a namespace (admin)",
        status_code=HTTP_200_OK,
        security=ADMIN_SECURITY,
        responses=ADMIN_ERRORS,
    )
    async def delete_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        key: KeyParam,
    ) -> CounterResponse:
        """Removes the counter (it reads 0 afterwards) and returns its last value. Takes the
        admin token or the counter's own admin key."""
        counter = CounterId(namespace, key)
        await require_admin_or_counter_key(request, counter_service, counter, reset=False)
        return deleted_response(counter, await counter_service.delete(counter))
