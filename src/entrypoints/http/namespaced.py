"""Counters of every namespace: `/namespaces/{namespace}/counters[/{key}]`.

The listing and the explicit create of a namespace's counters; each counter's own routes are
counter_routes.py's, the same handlers as `/counters/{name}` (the namespace `default`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from domain.model import NAME_RULE, CounterId
from domain.rules import Rules
from domain.services import CounterService
from entrypoints.http.controllers import (
    BODY_ERRORS,
    LIST_ERRORS,
    NAME_SCHEMA,
    STORE_ERRORS,
    ExactAllowController,
    counter_page,
    decode_cursor,
    problem,
)
from entrypoints.http.openapi import DocumentedOperation
from entrypoints.http.schemas import (
    CURSOR_PATTERN,
    CounterPage,
    CreatedResponse,
    CreateRequest,
    created_response,
)
from entrypoints.http.versions import ETAG_HEADERS, tagged

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
        response_headers=ETAG_HEADERS,
    )
    async def create_counter(
        self,
        counter_service: NamedDependency[CounterService],
        namespace: NamespaceParam,
        data: JSONBody[CreateRequest],
    ) -> Response[CreatedResponse]:
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
        return tagged(created_response(counter, admin_key), counter, HTTP_201_CREATED)
