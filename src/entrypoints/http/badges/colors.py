"""Badge colours: the named colours of shields.io and hex `#rgb` / `#rrggbb` (the `#` optional)."""

from __future__ import annotations

import re

# shields.io's palette, so that a badge moved between the two services looks the same.
NAMED_COLORS: dict[str, str] = {
    "brightgreen": "#44cc11",
    "green": "#97ca00",
    "yellowgreen": "#a4a61d",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
    "lightgray": "#9f9f9f",
    "grey": "#555555",
    "gray": "#555555",
    # the names by meaning
    "success": "#44cc11",
    "important": "#fe7d37",
    "critical": "#e05d44",
    "informational": "#007ec6",
    "inactive": "#9f9f9f",
}
_HEX = "#?(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})"
# The query parameters are checked against this (and documented with it) before a handler runs.
COLOR_PATTERN = f"^(?:{'|'.join(NAMED_COLORS)}|{_HEX})$"
_HEX_RE = re.compile(_HEX)


class InvalidColorError(ValueError):
    pass


def parse_color(value: str) -> str:
    """`value` as `#rrggbb` (lower case); InvalidColorError if it is no colour named above."""
    named = NAMED_COLORS.get(value)
    if named is not None:
        return named
    if _HEX_RE.fullmatch(value) is None:
        raise InvalidColorError(f"not a colour name or a hex colour (#rgb or #rrggbb): {value!r}")
    digits = value.removeprefix("#").lower()
    if len(digits) == len("rgb"):
        digits = "".join(d * 2 for d in digits)
    return f"#{digits}"


def is_light(hex_color: str) -> bool:
    """Whether dark text reads better than white on `hex_color` (`#rrggbb`): its perceived
    brightness (the YIQ weights, as shields.io decides it) is above 0.69."""
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return (red * 299 + green * 587 + blue * 114) / 255_000 > 0.69  # noqa: PLR2004
