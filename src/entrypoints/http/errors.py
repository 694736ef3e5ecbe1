"""The one table that turns exceptions into problem-details responses (RFC 9457).

Handlers hold no try/except: domain errors travel up to here. A 500 never shows internal
detail; its traceback goes to the log, with the request id that the response also carries. A
store's own message (hosts, ports, namespaces, ConfigMap names, key prefixes) is for the
operator: it goes to the log line, and the client gets a fixed detail per problem type, naming
at most its own counter.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from domain.errors import (
    CounterExistsError,
    CounterOverflowError,
    DomainError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    IdempotencyTableFullError,
    InvalidAmountError,
    InvalidCounterNameError,
    InvalidIdempotencyKeyError,
    InvalidInputError,
    OutcomeUnknownError,
    StepOutOfRangeError,
    StoreCorruptedError,
    StoreFullError,
    StoreUnavailableError,
    VersionMismatchError,
)
from domain.model import DEFAULT_NAMESPACE
from entrypoints.http.schemas import ProblemDetails
from entrypoints.http.versions import ETAG, etag

logger = logging.getLogger("counter.http")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "urn:counter-web-server:problem:"
_BUG_DETAIL = "the server failed to handle this request; the log has the details under this request's id"
_CORRUPTED_DETAIL = "the stored data of {counter} cannot be read; it was left untouched"


class AdminDisabledError(Exception):
    """Admin routes are off because no COUNTER_ADMIN_TOKEN is configured."""

    title = "Admin operations are disabled"


class UnauthorizedError(Exception):
    """The bearer token is missing or wrong."""

    title = "Unauthorized"


class TooManyStreamsError(Exception):
    """This process serves as many event streams as it may (or is stopping): come back later."""

    title = "Too many event streams"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


# The status and problem type of each error; its title is the class's own (`title`), written
# once where the error is defined. Most specific first: the first class the exception is an
# instance of wins.
_TABLE: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidCounterNameError, 400, "invalid-counter-name"),
    (InvalidIdempotencyKeyError, 400, "invalid-idempotency-key"),
    (InvalidAmountError, 422, "invalid-amount"),
    (InvalidInputError, 422, "invalid-input"),
    (CounterOverflowError, 409, "counter-overflow"),
    (CounterExistsError, 409, "counter-exists"),
    # 403, as CountAPI answers an update outside its bounds: the request is understood and
    # well-formed, the counter's own rules forbid it.
    (StepOutOfRangeError, 403, "step-out-of-range"),
    (ForbiddenError, 403, "forbidden"),
    (VersionMismatchError, 412, "version-mismatch"),
    (IdempotencyKeyReusedError, 422, "idempotency-key-reused"),
    (OutcomeUnknownError, 503, "outcome-unknown"),
    (StoreFullError, 507, "store-full"),
    (IdempotencyTableFullError, 503, "idempotency-table-full"),
    (StoreUnavailableError, 503, "store-unavailable"),
    (StoreCorruptedError, 500, "store-corrupted"),
    (AdminDisabledError, 403, "admin-disabled"),
    (UnauthorizedError, 401, "unauthorized"),
    (TooManyStreamsError, 503, "too-many-streams"),
)


def _problem(
    path: str,
    status: int,
    *,
    title: str,
    detail: str,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ProblemDetails]:
    body = ProblemDetails(
        type=f"{_TYPE_BASE}{slug}" if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=path,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_for(exc: Exception, path: str, counter: str | None = None) -> Response[ProblemDetails]:
    """The answer to a domain (or admin) error; anything unmapped is a bug and gets a bare 500
    whose traceback goes to the log. `counter`: the name of the counter the request is about,
    if any (a store's error may not know it)."""
    mapping = next(((status, slug) for cls, status, slug in _TABLE if isinstance(exc, cls)), None)
    if mapping is None:
        logger.error("unhandled error", exc_info=exc)
        return _problem(path, 500, title="Internal Server Error", detail=_BUG_DETAIL)
    headers: dict[str, str] = {}
    detail = str(exc)
    if isinstance(exc, StoreUnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
        logger.warning("store unavailable", extra={"error": detail})
        detail = exc.client_detail
    elif isinstance(exc, StoreCorruptedError):
        logger.error("unreadable stored data", extra={"error": detail})
        counter = exc.counter or counter
        detail = _CORRUPTED_DETAIL.format(counter="a counter" if counter is None else f"counter {counter!r}")
    elif isinstance(exc, TooManyStreamsError):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, VersionMismatchError):
        headers[ETAG] = etag(exc.current)
    elif isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="counter-admin"'
    status, slug = mapping
    title: str = getattr(exc, "title", HTTPStatus(status).phrase)
    return _problem(path, status, title=title, detail=detail, slug=slug, headers=headers or None)


def handle_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    return problem_for(exc, request.url.path, _counter_of(request))


def _counter_of(request: Request[Any, Any, Any]) -> str | None:
    """The counter a request is about: its `{name}`, or the one its route is fixed to (the
    `counter` of the route's `opt`, as /counter sets it), or None (a listing, a health check)."""
    params = request.scope.get("path_params", {})
    name = params.get("key", params.get("name"))
    if isinstance(name, str):
        namespace = params.get("namespace", DEFAULT_NAMESPACE)
        return name if namespace == DEFAULT_NAMESPACE else f"{namespace}/{name}"
    handler = request.scope.get("route_handler")
    counter = handler.opt.get("counter") if handler is not None else None
    return counter if isinstance(counter, str) else None


def handle_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ProblemDetails]:
    details = exc.extra if isinstance(exc.extra, list) else []
    reasons = "; ".join(
        f"{item.get('key') or item.get('source') or 'body'}: {item.get('message')}"
        for item in details
        if isinstance(item, dict)
    )
    detail = reasons or exc.detail or "the request is not valid"
    return _problem(request.url.path, 400, title="Invalid request", detail=detail, slug="invalid-request")


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ProblemDetails]:
    status = exc.status_code
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return handle_unexpected(request, exc)
    title = HTTPStatus(status).phrase
    headers = dict(exc.headers or {})
    detail = exc.detail or title
    return _problem(request.url.path, status, title=title, detail=detail, headers=headers or None)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    return handle_domain_error(request, exc)  # unmapped: problem_for logs it and answers 500


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: handle_domain_error,
    AdminDisabledError: handle_domain_error,
    UnauthorizedError: handle_domain_error,
    TooManyStreamsError: handle_domain_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


async def release_dependency_group(exc: Exception, _scope: Any) -> None:
    """Litestar resolves the dependencies of a batch in a task group and re-raises the group's
    first error `from` the group, which holds that error: a reference cycle through the group's
    traceback and every frame of the request, left for the collector (which the server runs
    rarely) after each refusal raised in such a dependency. The error keeps its own traceback; the
    group goes. An app-level `after_exception` hook, so it holds for every route."""
    group = exc.__cause__
    if isinstance(group, BaseExceptionGroup) and any(error is exc for error in group.exceptions):
        exc.__cause__ = exc.__context__ = None
