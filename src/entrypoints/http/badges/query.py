"""What a badge request may ask for (its query), checked by Litestar before a handler runs:
a bad value is a 400 problem-details answer that names the parameter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from litestar.params import QueryParameter

from entrypoints.http.badges.colors import COLOR_PATTERN, NAMED_COLORS, parse_color
from entrypoints.http.badges.render import MAX_LABEL_LENGTH
from entrypoints.http.badges.styles import BadgeStyle

MAX_AFFIX_LENGTH = 24
DEFAULT_COLOR = "blue"
DEFAULT_LABEL_COLOR = "grey"
_COLORS = ", ".join(NAMED_COLORS)
_SHORT_UNITS = "kMGTPE"
_THOUSAND = 1000


class CountFormat(StrEnum):
    PLAIN = "plain"  # 1234567
    GROUPED = "grouped"  # 1,234,567
    SHORT = "short"  # 1.2M


def format_count(count: int, number_format: CountFormat = CountFormat.PLAIN) -> str:
    if number_format is CountFormat.GROUPED:
        return f"{count:,}"
    if number_format is CountFormat.PLAIN or abs(count) < _THOUSAND:
        return str(count)
    sign = "-" if count < 0 else ""
    size, power = abs(count), 1
    while power < len(_SHORT_UNITS) and size >= _THOUSAND ** (power + 1):
        power += 1
    scaled = round(size / _THOUSAND**power, 1)
    if scaled >= _THOUSAND and power < len(_SHORT_UNITS):  # 999,950 is 1M, not 1000k
        power, scaled = power + 1, round(scaled / _THOUSAND, 1)
    return f"{sign}{scaled:.1f}".removesuffix(".0") + _SHORT_UNITS[power - 1]


@dataclass(frozen=True, slots=True)
class BadgeQuery:
    label: str | None  # None: the route's default label
    color: str  # #rrggbb
    label_color: str
    color_asked: str | None  # as the query gave it (for shields.io's endpoint JSON)
    label_color_asked: str | None
    style: BadgeStyle
    prefix: str
    suffix: str
    number_format: CountFormat
    text_color: str | None = None  # #rrggbb; None: white or dark, whichever reads better

    def message(self, count: int) -> str:
        return f"{self.prefix}{format_count(count, self.number_format)}{self.suffix}"


_COLOR_HELP = f"one of {_COLORS}, or hex `rgb` / `rrggbb` with or without `#` (`%23` in a URL). Default"
ColorParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        pattern=COLOR_PATTERN,
        description=f"The message's colour: {_COLOR_HELP} `{DEFAULT_COLOR}`.",
    ),
]
LabelColorParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        pattern=COLOR_PATTERN,
        description=f"The label's colour: {_COLOR_HELP} `{DEFAULT_LABEL_COLOR}`.",
    ),
]
PrefixParam = Annotated[
    str,
    QueryParameter(
        required=False,
        max_length=MAX_AFFIX_LENGTH,
        description=f"Text put before the count (at most {MAX_AFFIX_LENGTH} characters).",
    ),
]
SuffixParam = Annotated[
    str,
    QueryParameter(
        required=False,
        max_length=MAX_AFFIX_LENGTH,
        description=f"Text put after the count (at most {MAX_AFFIX_LENGTH} characters).",
    ),
]
LabelParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        max_length=MAX_LABEL_LENGTH,
        description="The left-hand text (at most 64 characters; empty: the count alone)."
        " Default: the counter's name, `count` for the default counter.",
    ),
]
StyleParam = Annotated[
    BadgeStyle, QueryParameter(required=False, description="The look, as shields.io's styles.")
]
FormatParam = Annotated[
    CountFormat,
    QueryParameter(
        required=False,
        description="How the count is written: `plain` 1234567, `grouped` 1,234,567, `short` 1.2M.",
    ),
]


# A 400 names a parameter by its name here, so each is named as the query spells it.
def provide_badge_query(  # noqa: PLR0917  (one function of the query's parameters, as Litestar calls it)
    label: LabelParam = None,
    color: ColorParam = None,
    labelColor: LabelColorParam = None,  # noqa: N803  (shields.io's name for it)
    style: StyleParam = BadgeStyle.FLAT,
    prefix: PrefixParam = "",
    suffix: SuffixParam = "",
    format: FormatParam = CountFormat.PLAIN,  # noqa: A002
) -> BadgeQuery:
    """The query of a badge route, as one value (a dependency of every badge handler)."""
    label_color, number_format = labelColor, format
    return BadgeQuery(
        label=label,
        color=parse_color(color or DEFAULT_COLOR),
        label_color=parse_color(label_color or DEFAULT_LABEL_COLOR),
        color_asked=color,
        label_color_asked=label_color,
        style=style,
        prefix=prefix,
        suffix=suffix,
        number_format=number_format,
    )
