"""HTTP controllers. Each handler validates nothing itself and catches nothing: the domain
validates, and the error table in errors.py answers for every failure.

The increment handlers are the reference and the OpenAPI documentation of `POST /counter`,
`POST /counters/{name}` and `POST /namespaces/{namespace}/counters/{key}` (counter_routes.py); their
route-level layer (increment_route.py) answers most of those
requests itself, the same way, inside the same router and middleware."""

from __future__ import annotations

import base64
import binascii
from functools import cache
from importlib.metadata import version
from typing import Annotated

from litestar import Controller, Response, get, route
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from litestar.response import Redirect
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.types import ExceptionHandlersMap, Scope

from domain.errors import InvalidCounterNameError
from domain.model import (
    DEFAULT_NAMESPACE,
    NAME_RULE,
    Counter,
    CounterId,
    Incremented,
    Page,
    Replaced,
    check_name,
)
from domain.services import CounterService
from entrypoints.http.errors import PROBLEM_JSON
from entrypoints.http.head import head_twin
from entrypoints.http.openapi import DocumentedOperation
from entrypoints.http.schemas import (
    COUNTER_NAME_MAX_LENGTH,
    COUNTER_NAME_PATTERN,
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    REPLAYED_HEADER,
    CounterPage,
    CounterResponse,
    LiveResponse,
    ProblemDetails,
    ReadyResponse,
    ReplacedResponse,
    counter_response,
    rules_response,
)
from entrypoints.http.versions import ETAG_HEADERS, not_modified, tagged


def problem(description: str) -> ResponseSpec:
    """A problem answer of an operation, for the route modules beside this one."""
    return _problem(description)


def _problem(description: str) -> ResponseSpec:
    # No generated examples: Litestar would make up random ones (a `status` of 4966).
    return ResponseSpec(
        ProblemDetails, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


STORE_ERRORS = {
    500: _problem("The store holds data for this counter that cannot be read; it was left untouched."),
    503: _problem("The store is unavailable; nothing was changed. Retry after `Retry-After` seconds."),
    # Every API route but health checks passes the rate limits, when they are configured.
    429: _problem(
        "A rate limit (COUNTER_RATE_LIMIT_PER_CLIENT, or _PER_COUNTER_WRITES for a write) is used up;"
        " nothing was changed. Retry after `Retry-After` seconds; `RateLimit-*` describe the limit."
    ),
}
NAME_ERRORS = {
    400: _problem(
        f"Invalid counter namespace or key ({NAME_RULE}), or a malformed `If-Match` or"
        " `If-None-Match`; the detail names which."
    )
}
# The answers of a conditional request (versions.py).
NOT_MODIFIED = {304: ResponseSpec(None, description="The counter is at the version `If-None-Match` names.")}
PRECONDITION_FAILED = {
    412: _problem(
        "`If-Match` names no version the counter is at; nothing was changed. The `ETag` of this"
        " answer is the counter's version now."
    )
}
BODY_ERRORS = {
    413: _problem("The request body is larger than the limit."),
    415: _problem("A request body needs `Content-Type: application/json`."),
}
# A write's 503 may also say that its outcome is unknown (README, "Store down").
_WRITE_UNAVAILABLE = _problem(
    "The store is unavailable. Type `urn:counter-web-server:problem:store-unavailable`: nothing was"
    " changed; `...:outcome-unknown`: the write may have been applied, retry with the same"
    " Idempotency-Key; `...:idempotency-table-full`: no room for a new Idempotency-Key yet."
    " Retry after `Retry-After` seconds."
)
INCREMENT_ERRORS = {
    **STORE_ERRORS,
    503: _WRITE_UNAVAILABLE,
    **BODY_ERRORS,
    400: _problem(
        "Invalid counter namespace, key or Idempotency-Key, or a body that is not strictly"
        " `IncrementRequest`: malformed JSON, a key given twice, an unknown field, a `by` that is"
        ' not a JSON integer (`"1"`, `1.0`) or outside the signed 64-bit range.'
    ),
    409: _problem("The result would leave the signed 64-bit range; nothing was changed."),
    422: _problem("`by` is 0, or the Idempotency-Key was used before with a different request."),
    507: _problem("The store has no room for a new counter or Idempotency-Key; existing counters count."),
    403: _problem(
        "Type `...:step-out-of-range`: `by` is outside the counter's `min_step`..`max_step`;"
        " nothing was changed."
    ),
}
ADMIN_ERRORS = {
    **STORE_ERRORS,
    **NAME_ERRORS,
    503: _WRITE_UNAVAILABLE,
    401: _problem(
        "Missing or wrong bearer token: neither the admin token nor the counter's own admin key"
        " (`WWW-Authenticate: Bearer`)."
    ),
    403: _problem("Admin operations are disabled: COUNTER_ADMIN_TOKEN is not set."),
}
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
SET_ERRORS = {
    **ADMIN_ERRORS,
    **BODY_ERRORS,
    507: _problem("The store has no room for a new counter; existing counters can be set."),
    400: _problem(
        "Invalid counter namespace or key, or a body that is not strictly `SetRequest` (malformed"
        " JSON, a key given twice, an unknown or missing field, a `count` that is not a JSON integer),"
        " or a malformed `If-Match`."
    ),
}
LIST_ERRORS = {**STORE_ERRORS, 400: _problem("Invalid namespace, `cursor` or `limit`.")}

# Documented, not enforced here: the domain checks names and answers invalid-counter-name.
NAME_SCHEMA = {"pattern": COUNTER_NAME_PATTERN, "min_length": 1, "max_length": COUNTER_NAME_MAX_LENGTH}
CounterNameParam = Annotated[
    str,
    PathParameter(
        description=f"The counter's key in the namespace `default`: {NAME_RULE}.", schema_extra=NAME_SCHEMA
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
            " `Idempotent-Replayed: true` and changes nothing. 1-255 printable ASCII characters;"
            " spaces and tabs around them are not part of the key (RFC 9110, section 5.5)."
        ),
        schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},  # the domain checks it: invalid-idempotency-key
    ),
]


REPLAYED_HEADERS = [
    ResponseHeader(
        name=REPLAYED_HEADER,
        documentation_only=True,
        description="`true` when this is the recorded response of an earlier request with the same"
        " Idempotency-Key; nothing was changed. Absent otherwise.",
    ),
    *ETAG_HEADERS,
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


def _allow(scope: Scope) -> Response[None]:
    """The answer to OPTIONS: `Allow` lists every method the request's route serves."""
    template = scope.get("path_template")
    methods = next(
        (
            r.methods
            for r in scope["litestar_app"].routes
            if isinstance(r, HTTPRoute) and r.path_format == template
        ),
        {HttpMethod.OPTIONS},
    )
    headers = {"Allow": ", ".join(sorted(methods))}
    return Response(None, status_code=HTTP_204_NO_CONTENT, headers=headers, media_type=MediaType.TEXT)


class ExactAllowController(Controller):
    """A controller whose OPTIONS answers list every method of the path, and whose GET routes
    answer HEAD too (head.py).

    Litestar 2 adds an OPTIONS handler to a path with the first handler registered for it, and
    that handler's `Allow` lists the methods known then: the first handler's only
    (litestar-org/litestar#4169, fixed in 3.0). This controller registers its own OPTIONS
    handler for all its paths before its other handlers, built as Litestar builds its own, so
    Litestar adds none; it reads the methods of the route when asked."""

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        handlers = super().get_route_handlers()
        handlers += [
            head_twin(h)
            for h in handlers
            if isinstance(h, HTTPRouteHandler) and h.http_methods == {HttpMethod.GET}
        ]
        http = [h for h in handlers if isinstance(h, HTTPRouteHandler)]
        served = {path for h in http if HttpMethod.OPTIONS in h.http_methods for path in h.paths}
        paths = sorted({path for h in http for path in h.paths} - served)  # an OPTIONS of its own stays
        if not paths:
            return handlers
        options = HTTPRouteHandler(
            path=paths, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False
        )(_allow)
        options.owner = self
        return [options, *handlers]


def incremented(result: Incremented) -> Response[CounterResponse]:
    headers = {REPLAYED_HEADER: "true"} if result.replayed else None
    return tagged(counter_response(result.counter), result.counter, headers=headers)


def read_counter(counter: Counter, if_none_match: str | None) -> Response[CounterResponse]:
    """The answer of a read: the counter with its ETag, or a 304 while If-None-Match names it."""
    return not_modified(if_none_match, counter) or tagged(counter_response(counter), counter)


class CounterController(ExactAllowController):
    """The listing of the namespace `default` (counter_routes.py serves each counter,
    namespaced.py every namespace)."""

    path = "/counters"
    tags = ["counters"]  # noqa: RUF012 (Litestar declares it so)

    @get(
        operation_id="listCounters",
        operation_class=DocumentedOperation,
        summary="List the counters of the namespace default by name",
        responses=LIST_ERRORS,
    )
    async def list_counters(
        self,
        counter_service: NamedDependency[CounterService],
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size (1-1000).")] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(description="`next_cursor` of the previous page.", pattern=CURSOR_PATTERN),
        ] = None,
    ) -> CounterPage:
        """Returns the counters of the namespace `default` sorted by name, a page at a time."""
        return counter_page(await counter_service.list(DEFAULT_NAMESPACE, decode_cursor(cursor), limit))


class HealthController(ExactAllowController):
    path = "/health"
    tags = ["health"]  # noqa: RUF012 (Litestar declares it so)

    @get(
        "/live",
        operation_id="live",
        summary="Liveness: the process answers (no I/O)",
        operation_class=DocumentedOperation,
    )
    async def live(self) -> LiveResponse:
        """Always 200 while the process serves requests."""
        return LIVE

    @get(
        "/ready",
        operation_id="ready",
        operation_class=DocumentedOperation,
        summary="Readiness: the store answers",
        responses={503: _problem("The store does not answer; `Retry-After` says when to ask again.")},
    )
    async def ready(
        self, counter_service: NamedDependency[CounterService], backend_name: NamedDependency[str]
    ) -> ReadyResponse:
        """Pings the store; 200 when it answers (with the service's version), 503 otherwise."""
        await counter_service.ping()
        return ReadyResponse(status="ready", store=backend_name, version=service_version())


LIVE = LiveResponse(status="alive")


@cache
def service_version() -> str:
    return version("counter-web-server")


@route("/docs", http_method=[HttpMethod.GET, HttpMethod.HEAD], include_in_schema=False)
async def docs_redirect() -> Redirect:
    """The original service served its docs at /docs."""
    return Redirect(path="/schema/swagger")


def counter_page(page: Page) -> CounterPage:
    return CounterPage(
        counters=[counter_response(c) for c in page.counters],
        next_cursor=None if page.next_after is None else _encode_cursor(page.next_after),
    )


def replaced_response(result: Replaced) -> ReplacedResponse:
    return ReplacedResponse(
        namespace=result.counter.namespace,
        name=result.counter.key,
        count=result.counter.count,
        previous=result.previous,
        version=result.counter.version,
        created_at=result.counter.created_at,
        updated_at=result.counter.updated_at,
        rules=rules_response(result.counter.rules),
        expires_at=result.counter.expires_at,
    )


def deleted_response(counter: CounterId, deleted: Counter | None) -> CounterResponse:
    return counter_response(deleted if deleted is not None else Counter(counter, 0))


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return check_name(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidCounterNameError):
        raise ValidationException("cursor: not a cursor this service returned") from None
