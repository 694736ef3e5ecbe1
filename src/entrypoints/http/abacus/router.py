"""The `/abacus` router: its routes, what they share (their request counts, CORS open to any
origin, `HEAD` on every `GET`) and the table that answers refusals in Abacus's bodies.

Errors Abacus has no body for are the app's problem details (errors.py): a store that does not
answer (503 with `Retry-After`, where Abacus says 500), a result outside the signed 64-bit range,
a step outside the range of a counter made by another API.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from domain.errors import CounterExistsError, NoAdminKeyError, WrongAdminKeyError
from entrypoints.http.abacus.admin import ADMIN_ROUTES
from entrypoints.http.abacus.answers import AbacusError, error_answer
from entrypoints.http.abacus.routes import PUBLIC_ROUTES, UNCOUNTED_OPT
from entrypoints.http.abacus.shields import SHIELD_ROUTES
from entrypoints.http.abacus.stats import AbacusStats, operation_of
from entrypoints.http.abacus.stream import STREAM_ROUTES
from entrypoints.http.compat.cors import ANY_ORIGIN, OpenCors
from entrypoints.http.controllers import with_head_and_options

PREFLIGHT_HEADERS = {  # Abacus's CORS settings
    "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
    "access-control-allow-headers": "Origin,Content-Length,Content-Type,Authorization",
    "access-control-max-age": "43200",
}
GENUINE = (
    "This entry is genuine and does not have an admin key. You cannot delete it. If you wanted to"
    " delete it, you should have created it with the /create endpoint."
)
_REFUSALS: dict[type[Exception], AbacusError] = {
    CounterExistsError: AbacusError(409, "Key already exists, please use a different key."),
    NoAdminKeyError: AbacusError(400, GENUINE),
    WrongAdminKeyError: AbacusError(401, "token is invalid", {"WWW-Authenticate": "Bearer"}),
}
Req = Request[Any, Any, Any]
ROUTES: list[BaseRouteHandler] = [*PUBLIC_ROUTES, *SHIELD_ROUTES, *ADMIN_ROUTES, *STREAM_ROUTES]


def _refused(request: Req, error: Exception) -> Response[Any]:
    return error_answer(request, next(r for cls, r in _REFUSALS.items() if isinstance(error, cls)))


def abacus_router() -> Router:
    """The `/abacus` router, with its own request counts."""
    counts = AbacusStats()

    def provide_stats() -> AbacusStats:
        return counts

    def count_request(request: Req) -> None:
        # Not counted, as in Abacus: what leads to the docs and OPTIONS, which its routes do not
        # serve; the stats route counts itself once it has answered.
        if request.method == "OPTIONS" or request.route_handler.opt.get(UNCOUNTED_OPT):
            return
        operation = operation_of(request.scope["path"])
        if operation != "stats":
            counts.count(operation)

    return Router(
        "/abacus",
        route_handlers=with_head_and_options(ROUTES),  # HEAD: head.py
        dependencies={"abacus_stats": Provide(provide_stats, sync_to_thread=False)},
        before_request=count_request,
        exception_handlers={
            AbacusError: error_answer,
            **dict.fromkeys(_REFUSALS, _refused),
        },
        middleware=[OpenCors(ANY_ORIGIN, PREFLIGHT_HEADERS)],
    )
