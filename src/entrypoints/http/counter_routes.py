"""One counter's routes, once: read and increment under `/counter` (the original service's one
counter), and read, increment, set and delete under `/counters/{name}` (a key of the namespace
`default`) and `/namespaces/{namespace}/counters/{key}`.

One set of handlers takes the counter's names from a dependency (`names`), which each path's
controller makes from its own path parameters; each controller also says how its operation ids
and summaries read. The increment's lean layer (increment_route.py) reads the path parameters
itself, the same way."""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Request, Response, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from domain.model import DEFAULT_COUNTER, DEFAULT_NAMESPACE, Counter, CounterId, VersionMatch
from domain.services import CounterService
from entrypoints.http.auth import Caller, require_admin_or_counter_key
from entrypoints.http.controllers import (
    ADMIN_ERRORS,
    ADMIN_SECURITY,
    INCREMENT_ERRORS,
    NAME_ERRORS,
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    REPLAYED_HEADERS,
    SET_ERRORS,
    STORE_ERRORS,
    CounterNameParam,
    ExactAllowController,
    IdempotencyKey,
    IncrementHandler,
    deleted_response,
    incremented,
    read_counter,
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
)
from entrypoints.http.versions import ETAG_HEADERS, IfMatch, IfNoneMatch, tagged, version_match


class _CountedCounter(ExactAllowController):
    """Read and increment one counter. A subclass sets `path`, the `names` dependency, and
    `noun` and `what`, which fill `{noun}` in the operation ids and `{what}` in the summaries."""

    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)
    noun: ClassVar[str]
    what: ClassVar[str]

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        handlers = super().get_route_handlers()  # copies of the class's handlers, this controller's own
        for handler in handlers:
            if isinstance(handler, HTTPRouteHandler):
                if isinstance(handler.operation_id, str):
                    handler.operation_id = handler.operation_id.format(noun=self.noun)
                if handler.summary is not None:
                    handler.summary = handler.summary.format(what=self.what)
        return handlers

    @get(
        operation_id="get{noun}",
        operation_class=DocumentedOperation,
        summary="Read {what}",
        responses={**STORE_ERRORS, **NAME_ERRORS, **NOT_MODIFIED},
        response_headers=ETAG_HEADERS,
    )
    async def get_counter(
        self,
        counter_service: NamedDependency[CounterService],
        names: NamedDependency[Names],
        if_none_match: IfNoneMatch = None,
    ) -> Response[CounterResponse]:
        """Returns the counter; 0 before its first increment."""
        return read_counter(await counter_service.get(CounterId(*names)), if_none_match)

    @IncrementHandler(
        http_method="POST",
        operation_id="increment{noun}",
        summary="Increment {what}",
        status_code=HTTP_200_OK,
        responses=INCREMENT_ERRORS,
        response_headers=REPLAYED_HEADERS,
        middleware=[IncrementRoute],
        operation_class=OptionalBodyOperation,
    )
    async def increment_counter(
        self,
        counter_service: NamedDependency[CounterService],
        names: NamedDependency[Names],
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[IncrementRequest | None] = None,
    ) -> Response[CounterResponse]:
        """Adds `by` (default 1; negative decrements) atomically and returns the new value."""
        by = 1 if data is None else data.by
        return incremented(await counter_service.increment(CounterId(*names), by, idempotency_key))


class _OneCounter(_CountedCounter):
    """Read, increment, set and delete one counter."""

    @put(
        operation_id="set{noun}",
        operation_class=DocumentedOperation,
        summary="Set {what} (admin)",
        security=ADMIN_SECURITY,
        responses={**SET_ERRORS, **PRECONDITION_FAILED},
        response_headers=ETAG_HEADERS,
    )
    async def set_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        names: NamedDependency[Names],
        data: JSONBody[SetRequest],
        if_match: IfMatch = None,
    ) -> Response[ReplacedResponse]:
        """Sets the counter to `count` and returns the new value with the previous one. Takes the
        admin token, the counter's own admin key, or nothing when the counter is resettable.
        With `If-Match`, only if the counter is at one of its versions (compare-and-set)."""
        counter_id = CounterId(*names)
        caller, match = await _authorized(request, counter_service, counter_id, if_match, reset=True)
        result = await counter_service.set(
            counter_id, data.count, admin=caller.admin, admin_key=caller.key, match=match
        )
        return tagged(replaced_response(result), result.counter)

    @delete(
        operation_id="delete{noun}",
        operation_class=DocumentedOperation,
        summary="Delete {what} (admin)",
        status_code=HTTP_200_OK,
        security=ADMIN_SECURITY,
        responses={**ADMIN_ERRORS, **PRECONDITION_FAILED},
        response_headers=ETAG_HEADERS,
    )
    async def delete_counter(
        self,
        request: Request[Any, Any, Any],
        counter_service: NamedDependency[CounterService],
        names: NamedDependency[Names],
        if_match: IfMatch = None,
    ) -> Response[CounterResponse]:
        """Removes the counter (it reads 0 afterwards) and returns its last value and version.
        Takes the admin token or the counter's own admin key. With `If-Match`, only if the
        counter is at one of its versions (compare-and-set)."""
        counter_id = CounterId(*names)
        caller, match = await _authorized(request, counter_service, counter_id, if_match, reset=False)
        deleted = await counter_service.delete(
            counter_id, admin=caller.admin, admin_key=caller.key, match=match
        )
        return tagged(deleted_response(counter_id, deleted), deleted or Counter(counter_id, 0))


async def _authorized(
    request: Request[Any, Any, Any],
    counter_service: CounterService,
    counter_id: CounterId,
    if_match: str | None,
    *,
    reset: bool,
) -> tuple[Caller, VersionMatch | None]:
    """Who changes the counter and the condition of the set or delete, once the caller may
    change it (a caller who may not learns nothing of its versions). A caller with the counter's
    key (or none, on a resettable counter) is judged again by the service, with the write."""
    caller = await require_admin_or_counter_key(request, counter_service, counter_id, reset=reset)
    return caller, version_match(if_match)


# What the dependency gives: the namespace and the key, as the path has them. The handler makes
# the CounterId, which checks them, as the increment's lean layer does. (An error raised while
# Litestar resolves several dependencies at once is chained to a task group that holds it, a
# reference cycle per refusal; errors.release_dependency_group unchains it, so either place is
# free of cycles.)
Names = tuple[str, str]


def _default() -> Names:
    return DEFAULT_NAMESPACE, DEFAULT_COUNTER


def _named(name: CounterNameParam) -> Names:
    return DEFAULT_NAMESPACE, name


def _namespaced(namespace: NamespaceParam, key: KeyParam) -> Names:
    return namespace, key


class DefaultCounterRoutes(_CountedCounter):
    """The original service's contract: one POST, one count, on the counter named `default`."""

    path = "/counter"
    dependencies = {"names": Provide(_default, sync_to_thread=False)}  # noqa: RUF012
    opt = {"counter": DEFAULT_COUNTER}  # noqa: RUF012 (the counter its errors name, see errors.py)
    noun = "DefaultCounter"
    what = "the default counter"


class NamedCounterRoutes(_OneCounter):
    """A named counter of the namespace `default`."""

    path = "/counters/{name:str}"
    dependencies = {"names": Provide(_named, sync_to_thread=False)}  # noqa: RUF012
    noun = "Counter"
    what = "a counter"


class NamespaceCounterRoutes(_OneCounter):
    """A counter of a namespace."""

    path = "/namespaces/{namespace:str}/counters/{key:str}"
    dependencies = {"names": Provide(_namespaced, sync_to_thread=False)}  # noqa: RUF012
    noun = "NamespaceCounter"
    what = "a counter of a namespace"


ONE_COUNTER_CONTROLLERS = [DefaultCounterRoutes, NamedCounterRoutes, NamespaceCounterRoutes]
