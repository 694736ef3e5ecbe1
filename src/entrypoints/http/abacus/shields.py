"""Abacus's shield routes, drawn by this server's badge renderer (badges/): `bgcolor` is the
count's colour, `textcolor` the texts', `text` the label (`counter`), `style` one of Abacus's
looks (`flat`, `flat-square`, `plastic`, each with a `-simple` form that shows the count alone;
anything else is `flat`). `font` and `fontsize` are taken and not used: the renderer draws
shields.io's fonts and sizes. A bad colour or label is refused before anything is counted."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from domain.model import CounterId
from domain.services import CounterService
from entrypoints.http.abacus.answers import AbacusError
from entrypoints.http.abacus.docs import (
    COLOR_SCHEMA,
    READ_ERRORS,
    STEP_ERRORS,
    TAG,
    WRITE_ERRORS,
    error,
)
from entrypoints.http.abacus.names import COUNTER
from entrypoints.http.abacus.routes import count_hit, existing
from entrypoints.http.abacus.stats import AbacusStats
from entrypoints.http.badges.colors import InvalidColorError, parse_color
from entrypoints.http.badges.query import DEFAULT_LABEL_COLOR, BadgeQuery, CountFormat
from entrypoints.http.badges.render import MAX_LABEL_LENGTH
from entrypoints.http.badges.routes import SVG, svg_response
from entrypoints.http.badges.styles import BadgeStyle
from entrypoints.http.openapi import DocumentedOperation
from entrypoints.http.rate_limit import WRITES_OPT

DEFAULT_TEXT = "counter"
DEFAULT_BACKGROUND = "007ec6"
DEFAULT_TEXT_COLOR = "fff"
SIMPLE = "-simple"
STYLES = {"flat": BadgeStyle.FLAT, "flat-square": BadgeStyle.FLAT_SQUARE, "plastic": BadgeStyle.PLASTIC}
Req = Request[Any, Any, Any]

BackgroundParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        description=f"The count's colour, hex with or without `#` (`{DEFAULT_BACKGROUND}`).",
        schema_extra=COLOR_SCHEMA,
    ),
]
TextColorParam = Annotated[
    str | None,
    QueryParameter(
        required=False, description=f"The texts' colour (`{DEFAULT_TEXT_COLOR}`).", schema_extra=COLOR_SCHEMA
    ),
]
TextParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        schema_extra={"maxLength": MAX_LABEL_LENGTH},
        description=f"The label (`{DEFAULT_TEXT}`; at most {MAX_LABEL_LENGTH} characters).",
    ),
]
StyleParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        description="`flat`, `flat-square`, `plastic`, or one of them with `-simple` (the count"
        " alone); anything else is `flat`.",
    ),
]
IgnoredParam = Annotated[str | None, QueryParameter(required=False, description="Taken and not used.")]


def _color(value: str | None, default: str) -> str:
    if value is None:
        value = default
    if not value:
        raise AbacusError(
            400, "color cannot be empty (hint: If you are prefixing with a # symbol, remove it and try again)"
        )
    try:
        return parse_color(value)
    except InvalidColorError:
        raise AbacusError(
            400, f"'{value}' is not a valid hex color (should be like 'fff' or 'ff5500')"
        ) from None


def provide_abacus_badge(
    *,
    bgcolor: BackgroundParam = None,
    textcolor: TextColorParam = None,
    text: TextParam = None,
    style: StyleParam = None,
    font: IgnoredParam = None,  # noqa: ARG001
    fontsize: IgnoredParam = None,  # noqa: ARG001
) -> BadgeQuery:
    """The shield's query (a dependency of both routes), checked before anything is counted."""
    name = style or "flat"
    label = DEFAULT_TEXT if text is None else text
    if len(label) > MAX_LABEL_LENGTH:
        raise AbacusError(400, f"text has at most {MAX_LABEL_LENGTH} characters")
    return BadgeQuery(
        label="" if name.endswith(SIMPLE) else label,
        color=_color(bgcolor, DEFAULT_BACKGROUND),
        label_color=parse_color(DEFAULT_LABEL_COLOR),
        color_asked=bgcolor,
        label_color_asked=None,
        style=STYLES.get(name.removesuffix(SIMPLE), BadgeStyle.FLAT),
        prefix="",
        suffix="",
        number_format=CountFormat.PLAIN,
        text_color=_color(textcolor, DEFAULT_TEXT_COLOR),
    )


_SHIELD: dict[str, Any] = {
    "dependencies": {**COUNTER, "abacus_badge": Provide(provide_abacus_badge, sync_to_thread=False)},
    "tags": [TAG],
    "media_type": SVG,
    "operation_class": DocumentedOperation,
}
_QUERY_ERROR = error("An invalid name, colour (hex, with or without `#`) or `text` (too long).")


@get(
    "/hit/{namespace:str}/{key:str}/shield",
    operation_id="abacusHitShield",
    summary="Abacus: count a hit and show it as a badge",
    description="**This GET writes**: adds 1, as `hit`, and answers the badge of the new value.",
    responses={**WRITE_ERRORS, **STEP_ERRORS, 400: _QUERY_ERROR},
    opt={WRITES_OPT: True},
    **_SHIELD,
)
async def hit_shield(
    counter_service: NamedDependency[CounterService],
    abacus_stats: NamedDependency[AbacusStats],
    counter: NamedDependency[CounterId],
    abacus_badge: NamedDependency[BadgeQuery],
) -> Response[bytes]:
    return svg_response(abacus_badge, DEFAULT_TEXT, await count_hit(counter_service, abacus_stats, counter))


@get(
    "/get/{namespace:str}/{key:str}/shield",
    operation_id="abacusGetShield",
    summary="Abacus: show a counter as a badge",
    description="The badge of the value; reading it never counts.",
    responses={**READ_ERRORS, 400: _QUERY_ERROR, 404: error("The key does not exist.")},
    **_SHIELD,
)
async def get_shield(
    counter_service: NamedDependency[CounterService],
    counter: NamedDependency[CounterId],
    abacus_badge: NamedDependency[BadgeQuery],
) -> Response[bytes]:
    current = await existing(counter_service, counter, touch=True)
    return svg_response(abacus_badge, DEFAULT_TEXT, current)


SHIELD_ROUTES = [hit_shield, get_shield]
