"""HTTP controllers. Each handler validates nothing itself and catches nothing: the domain
validates, and the error table in errors.py answers for every failure.

The two increment handlers are the reference and the OpenAPI documentation of `POST /counter`
and `POST /counters/{name}`; their route-level layer (increment_route.py) answers most of those
requests itself, the same way, inside the same router and middleware."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from litestar import Controller, Response, delete, get, put
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK
from litestar.types import ExceptionHandlersMap

from domain.errors import InvalidCounterNameError
from domain.model import DEFAULT_COUNTER, Incremented, check_name
from domain.services import CounterService
from entrypoints.http.auth import require_admin
from entrypoints.http.errors import PROBLEM_JSON
from entrypoints.http.increment_route import IncrementRoute
from entrypoints.http.schemas import (
    REPLAYED_HEADER,
    CounterPage,
    CounterResponse,
    IncrementRequest,
    LiveResponse,
    ProblemDetails,
    ReadyResponse,
    ReplacedResponse,
    SetRequest,
    counter_response,
)


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(ProblemDetails, description=description, media_type=PROBLEM_JSON)


STORE_ERRORS = {
    500: _problem("The store holds data for this counter that cannot be read; it was left untouched."),
    503: _problem("The store is unavailable; nothing was changed. Retry after `Retry-After` seconds."),
}
NAME_ERRORS = {400: _problem("Invalid counter name (1-63 of A-Z a-z 0-9 _ . -, first a letter or digit).")}
INCREMENT_ERRORS = {
    **STORE_ERRORS,
    400: _problem("Invalid counter name, malformed body, or invalid Idempotency-Key."),
    409: _problem("The result would leave the signed 64-bit range; nothing was changed."),
    413: _problem("The request body is larger than the limit."),
    422: _problem("`by` is 0, or the Idempotency-Key was used before with a different request."),
}
ADMIN_ERRORS = {
    **STORE_ERRORS,
    **NAME_ERRORS,
    401: _problem("Missing or wrong bearer token (`WWW-Authenticate: Bearer`)."),
    403: _problem("Admin operations are disabled: COUNTER_ADMIN_TOKEN is not set."),
}
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]

CounterNameParam = Annotated[
    str,
    PathParameter(
        description="1-63 characters of A-Z a-z 0-9 _ . -, starting with a letter or a digit.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description=(
            "Makes a retry safe: the first request with a key is applied and its response recorded;"
            " a repeat with the same body returns the recorded response with"
            " `Idempotent-Replayed: true` and changes nothing. 1-255 printable ASCII characters."
        ),
    ),
]


REPLAYED_HEADERS = [
    ResponseHeader(
        name=REPLAYED_HEADER,
        documentation_only=True,
        description="`true` when this is the recorded response of an earlier request with the same"
        " Idempotency-Key; nothing was changed. Absent otherwise.",
    )
]


class IncrementHandler(HTTPRouteHandler):
    """The route handler class of the two increment routes (`@IncrementHandler(..., http_method="POST")`),
    with its exception handlers resolved once.

    Litestar's router resolves a handler's exception handlers on every request, walking every
    layer that owns it; on these hot routes that showed in the profile. They cannot change once
    the app is built (each app registers its own copy of the handler), so the first request's
    answer is kept."""

    _exception_handlers: ExceptionHandlersMap | None = None

    def resolve_exception_handlers(self) -> ExceptionHandlersMap:
        if self._exception_handlers is None:
            self._exception_handlers = super().resolve_exception_handlers()
        return self._exception_handlers


def _incremented(result: Incremented) -> Response[CounterResponse]:
    headers = {REPLAYED_HEADER: "true"} if result.replayed else None
    return Response(counter_response(result.counter), status_code=HTTP_200_OK, headers=headers)


class DefaultCounterController(Controller):
    """The original service's contract: one POST, one count, on the counter named `default`."""

    path = "/counter"
    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)

    @get(operation_id="getDefaultCounter", summary="Read the default counter", responses=STORE_ERRORS)
    async def get_default(self, counter_service: NamedDependency[CounterService]) -> CounterResponse:
        """Returns the default counter; 0 before the first increment."""
        return counter_response(await counter_service.get(DEFAULT_COUNTER))

    @IncrementHandler(
        http_method="POST",
        operation_id="incrementDefaultCounter",
        summary="Increment the default counter",
        status_code=HTTP_200_OK,
        responses=INCREMENT_ERRORS,
        response_headers=REPLAYED_HEADERS,
        middleware=[IncrementRoute],
    )
    async def increment_default(
        self,
        counter_service: NamedDependency[CounterService],
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[IncrementRequest | None] = None,
    ) -> Response[CounterResponse]:
        """Adds `by` (default 1) to the default counter atomically and returns the new value."""
        by = 1 if data is None else data.by
        return _incremented(await counter_service.increment(DEFAULT_COUNTER, by, idempotency_key))


class CounterController(Controller):
    """Named counters."""

    path = "/counters"
    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)

    @get(
        operation_id="listCounters",
        summary="List counters by name",
        responses={**STORE_ERRORS, 400: _problem("Invalid `cursor` or `limit`.")},
    )
    async def list_counters(
        self,
        counter_service: NamedDependency[CounterService],
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size (1-1000).")] = 100,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page.", max_length=200)
        ] = None,
    ) -> CounterPage:
        """Returns counters sorted by name, a page at a time."""
        page = await counter_service.list(_decode_cursor(cursor), limit)
        return CounterPage(
            counters=[counter_response(c) for c in page.counters],
            next_cursor=None if page.next_after is None else _encode_cursor(page.next_after),
        )

    @get(
        "/{name:str}",
        operation_id="getCounter",
        summary="Read a counter",
        responses={**STORE_ERRORS, **NAME_ERRORS},
    )
    async def get_counter(
        self, counter_service: NamedDependency[CounterService], name: CounterNameParam
    ) -> CounterResponse:
        """Returns the named counter; 0 before its first increment."""
        return counter_response(await counter_service.get(name))

    @IncrementHandler(
        "/{name:str}",
        http_method="POST",
        operation_id="incrementCounter",
        summary="Increment a counter",
        status_code=HTTP_200_OK,
        responses=INCREMENT_ERRORS,
        response_headers=REPLAYED_HEADERS,
        middleware=[IncrementRoute],
    )
    async def increment_counter(
        self,
        counter_service: NamedDependency[CounterService],
        name: CounterNameParam,
        idempotency_key: IdempotencyKey = None,
        data: JSONBody[IncrementRequest | None] = None,
    ) -> Response[CounterResponse]:
        """Adds `by` (default 1; negative decrements) atomically and returns the new value."""
        by = 1 if data is None else data.by
        return _incremented(await counter_service.increment(name, by, idempotency_key))

    @put(
        "/{name:str}",
        operation_id="setCounter",
        summary="Set a counter (admin)",
        guards=[require_admin],
        security=ADMIN_SECURITY,
        responses={**ADMIN_ERRORS, 422: _problem("Invalid body.")},
    )
    async def set_counter(
        self,
        counter_service: NamedDependency[CounterService],
        name: CounterNameParam,
        data: JSONBody[SetRequest],
    ) -> ReplacedResponse:
        """Sets the counter to `count` and returns the new value with the previous one."""
        result = await counter_service.set(name, data.count)
        return ReplacedResponse(
            name=result.counter.name,
            count=result.counter.count,
            previous=result.previous,
            created_at=result.counter.created_at,
            updated_at=result.counter.updated_at,
        )

    @delete(
        "/{name:str}",
        operation_id="deleteCounter",
        summary="Delete a counter (admin)",
        status_code=HTTP_200_OK,
        guards=[require_admin],
        security=ADMIN_SECURITY,
        responses=ADMIN_ERRORS,
    )
    async def delete_counter(
        self, counter_service: NamedDependency[CounterService], name: CounterNameParam
    ) -> CounterResponse:
        """Removes the counter (it reads 0 afterwards) and returns its last value."""
        deleted = await counter_service.delete(name)
        return counter_response(deleted) if deleted is not None else CounterResponse(name=name, count=0)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012 (Litestar declares it so)

    @get("/live", operation_id="live", summary="Liveness: the process answers (no I/O)")
    async def live(self) -> LiveResponse:
        """Always 200 while the process serves requests."""
        return LIVE

    @get(
        "/ready",
        operation_id="ready",
        summary="Readiness: the store answers",
        responses={503: _problem("The store does not answer; `Retry-After` says when to ask again.")},
    )
    async def ready(
        self, counter_service: NamedDependency[CounterService], backend_name: NamedDependency[str]
    ) -> ReadyResponse:
        """Pings the store; 200 when it answers, 503 otherwise."""
        await counter_service.ping()
        return ReadyResponse(status="ready", store=backend_name)


LIVE = LiveResponse(status="alive")


@get("/docs", include_in_schema=False)
async def docs_redirect() -> Redirect:
    """The original service served its docs at /docs."""
    return Redirect(path="/schema/swagger")


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return check_name(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidCounterNameError):
        raise ValidationException("cursor: not a cursor this service returned") from None
