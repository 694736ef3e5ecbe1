"""The badge routes: an SVG of a counter (read only), the "count this view" SVG (the one GET
that writes) and shields.io's endpoint JSON: one set of handlers, under the default counter's
path, a named counter's and a namespaced counter's.

Every answer tells caches not to keep it: GitHub shows README images through its Camo proxy,
which keeps an image as long as its headers allow, so a counter badge would freeze otherwise.
Errors are the app's problem details (JSON), from the one error table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec

from domain.model import Counter
from domain.services import CounterService
from entrypoints.http.badges.query import DEFAULT_COLOR, BadgeQuery, provide_badge_query
from entrypoints.http.badges.render import clean_text, render_badge
from entrypoints.http.badges.targets import BadgeTarget, on_counter_paths, operation_id_of
from entrypoints.http.controllers import STORE_ERRORS, ExactAllowController
from entrypoints.http.errors import PROBLEM_JSON
from entrypoints.http.openapi import DocumentedOperation
from entrypoints.http.rate_limit import WRITES_OPT
from entrypoints.http.schemas import ProblemDetails

SVG = "image/svg+xml; charset=utf-8"
SHIELDS_JSON = "application/json"
NO_CACHE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",  # for HTTP/1.0 caches
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",  # already expired, for caches that read only this
}


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        ProblemDetails, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


_QUERY_ERRORS = {
    400: _problem(
        "Invalid counter name, or a query parameter out of its rules (an unknown colour or style,"
        " a label longer than 64 characters, a prefix or suffix longer than 24); the detail names it."
    )
}
READ_ERRORS = {**STORE_ERRORS, **_QUERY_ERRORS}
HIT_ERRORS = {
    **READ_ERRORS,
    503: _problem(
        "The store is unavailable. Type `urn:counter-web-server:problem:store-unavailable`: nothing was"
        " counted; `...:outcome-unknown`: the view may have been counted. Retry after `Retry-After`"
        " seconds."
    ),
    409: _problem("The counter is at the top of the signed 64-bit range; nothing was counted."),
    507: _problem("The store has no room for a new counter; existing counters count."),
}
_DOCUMENTED_HEADERS = [
    ResponseHeader(
        name=name, value=value, documentation_only=True, description="Keeps caches from showing an old count."
    )
    for name, value in NO_CACHE_HEADERS.items()
] + [
    ResponseHeader(
        name="ETag",
        documentation_only=True,
        description="A strong validator of this picture: the counter's version and a digest of"
        ' what the query asks for (`"<version>-<digest>"`); it changes exactly when the picture does.',
    )
]
_HIT_DESCRIPTION = (
    "**This GET writes**: every request, `HEAD` included, adds one to the counter and the badge shows"
    " the new value. It is the one GET of the API that changes anything, so that an `<img>` in a"
    " README can count its views; never cacheable. Use `badge.svg` to show a count without counting."
)
_READ_DESCRIPTION = (
    "An SVG badge of the counter's value (0 before its first increment). Reading it never counts;"
    " `hit.svg` is the badge that counts a view."
)
_SHIELDS_DESCRIPTION = (
    'shields.io\'s endpoint badge JSON, `{"schemaVersion": 1, "label", "message", "color"}`'
    " (and `labelColor` when asked), for shields.io to draw: `img.shields.io/endpoint?url=`"
    " followed by this URL, encoded."
    " Reading it never counts."
)


class ShieldsEndpoint(
    msgspec.Struct,
    omit_defaults=True,
    rename={"schema_version": "schemaVersion", "label_color": "labelColor"},
):
    """shields.io's endpoint badge: `img.shields.io/endpoint?url=` and this URL draws it."""

    schema_version: Annotated[int, msgspec.Meta(ge=1, le=1)]
    label: str
    message: str
    color: str
    label_color: str | None = None


def _headers(counter: Counter, query: BadgeQuery, default_label: str) -> dict[str, str]:
    # What the picture is made of: the counter's state (its version) and what shapes the picture
    # (the query, and the label the route gives when the query names none).
    shape = hashlib.sha256(repr((query, default_label)).encode()).hexdigest()[:16]
    return {**NO_CACHE_HEADERS, "ETag": f'"{counter.version}-{shape}"'}


def svg_response(query: BadgeQuery, default_label: str, counter: Counter) -> Response[bytes]:
    """The badge of `counter` as the query asks for it, with headers that keep caches from it."""
    svg = render_badge(
        default_label if query.label is None else query.label,
        query.message(counter.count),
        label_color=query.label_color,
        color=query.color,
        style=query.style,
        text_color=query.text_color,
    )
    return Response(svg.encode(), media_type=SVG, headers=_headers(counter, query, default_label))


def _shields(query: BadgeQuery, default_label: str, counter: Counter) -> Response[ShieldsEndpoint]:
    endpoint = ShieldsEndpoint(
        schema_version=1,
        label=clean_text(default_label if query.label is None else query.label),
        message=clean_text(query.message(counter.count)),
        color=(query.color_asked or DEFAULT_COLOR).removeprefix("#"),
        label_color=None if query.label_color_asked is None else query.label_color_asked.removeprefix("#"),
    )
    # Returned as the Struct, so that the OpenAPI document states its shape.
    return Response(endpoint, media_type=SHIELDS_JSON, headers=_headers(counter, query, default_label))


_BADGE: dict[str, Any] = {
    "operation_class": DocumentedOperation,
    "media_type": SVG,
    "response_headers": _DOCUMENTED_HEADERS,
    "tags": ["badges"],
}


class _Badges(ExactAllowController):
    """The three badge routes of one kind of counter path; each subclass says which counter
    (the `target` dependency) and how its operation ids begin (`opt`)."""

    @get(
        "/badge.svg",
        operation_id=operation_id_of("Badge"),
        summary="Badge of a counter (reads)",
        description=_READ_DESCRIPTION,
        responses=READ_ERRORS,
        **_BADGE,
    )
    async def badge(
        self,
        counter_service: NamedDependency[CounterService],
        target: NamedDependency[BadgeTarget],
        badge: NamedDependency[BadgeQuery],
    ) -> Response[bytes]:
        return svg_response(badge, target.label, await counter_service.get(target.counter))

    @get(
        "/hit.svg",
        operation_id=operation_id_of("Hit"),
        summary="Count a view of a counter and show it",
        responses=HIT_ERRORS,
        description=_HIT_DESCRIPTION,
        opt={WRITES_OPT: True},  # a write for the per-counter rate limit, though a GET
        **_BADGE,
    )
    async def hit(
        self,
        counter_service: NamedDependency[CounterService],
        target: NamedDependency[BadgeTarget],
        badge: NamedDependency[BadgeQuery],
    ) -> Response[bytes]:
        incremented = await counter_service.increment(target.counter)
        return svg_response(badge, target.label, incremented.counter)

    @get(
        "/shields.json",
        operation_id=operation_id_of("Shields"),
        summary="shields.io endpoint JSON of a counter",
        description=_SHIELDS_DESCRIPTION,
        responses=READ_ERRORS,
        **{**_BADGE, "media_type": SHIELDS_JSON},
    )
    async def shields(
        self,
        counter_service: NamedDependency[CounterService],
        target: NamedDependency[BadgeTarget],
        badge: NamedDependency[BadgeQuery],
    ) -> Response[ShieldsEndpoint]:
        return _shields(badge, target.label, await counter_service.get(target.counter))


def _dependencies(target: Callable[..., BadgeTarget]) -> dict[str, Provide]:
    return {
        "badge": Provide(provide_badge_query, sync_to_thread=False),
        "target": Provide(target, sync_to_thread=False),
    }


BADGE_CONTROLLERS = on_counter_paths(_Badges, "Badges", _dependencies)
