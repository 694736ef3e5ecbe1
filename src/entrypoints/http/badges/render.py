"""`render_badge`: a label and a message drawn as an SVG 1.1 badge, in shields.io's looks.

Text is set at ten times its size and scaled down by a tenth: renderers that place glyphs on
whole units then still place them to a tenth of a pixel. Each text gets `textLength`, the width
measured from the font table (widths.py), so the badge looks the same whichever of Verdana,
DejaVu Sans or another sans-serif the viewer has.
"""

from __future__ import annotations

import html
import unicodedata

from entrypoints.http.badges.colors import is_light, parse_color
from entrypoints.http.badges.styles import LOOKS, BadgeStyle, GradientStop, Look
from entrypoints.http.badges.widths import text_width

MAX_LABEL_LENGTH = 64
MAX_MESSAGE_LENGTH = 128
FONT_FAMILY = "Verdana,Geneva,DejaVu Sans,sans-serif"
_SCALE = 10
_XML_NONCHARACTERS = frozenset("\ufffe\uffff")


class BadgeTextTooLongError(ValueError):
    pass


def clean_text(text: str) -> str:
    """`text` without the characters a badge cannot show or XML cannot hold: control
    characters (tabs and newlines included), lone surrogates, U+FFFE and U+FFFF."""
    return "".join(
        c for c in text if unicodedata.category(c) not in {"Cc", "Cs"} and c not in _XML_NONCHARACTERS
    )


def accessible_text(label: str, message: str) -> str:
    return f"{label}: {message}" if label else message


def render_badge(
    label: str,
    message: str,
    *,
    label_color: str = "grey",
    color: str = "blue",
    style: BadgeStyle | str = BadgeStyle.FLAT,
    text_color: str | None = None,
) -> str:
    """The badge as an SVG document. Colours are names or hex (colors.py); an empty label
    draws the message alone. The texts are white or dark, whichever reads better on their
    background, unless `text_color` is given. ValueError (InvalidColorError,
    BadgeTextTooLongError, or an unknown style) for what it cannot draw."""
    look = LOOKS[BadgeStyle(style)]
    label, message = clean_text(label), clean_text(message)
    if len(label) > MAX_LABEL_LENGTH or len(message) > MAX_MESSAGE_LENGTH:
        raise BadgeTextTooLongError(
            f"a label has at most {MAX_LABEL_LENGTH} characters, a message {MAX_MESSAGE_LENGTH}"
        )
    if look.uppercase:
        label, message = label.upper(), message.upper()
    left, right = parse_color(label_color), parse_color(color)
    fill = None if text_color is None else parse_color(text_color)
    label_width = _text_width(label, look, bold=False)
    message_width = _text_width(message, look, bold=look.bold_message)
    left_width = label_width + 2 * look.padding if label else 0
    right_width = message_width + 2 * look.padding
    width = left_width + right_width
    title = html.escape(accessible_text(label, message))
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_n(width)}"'
            f' height="{look.height}" role="img" aria-label="{title}">'
        ),
        f"<title>{title}</title>",
        *_background(look, left_width, right_width, (left, right)),
        (
            f'<g fill="#fff" text-anchor="middle" font-family="{FONT_FAMILY}"'
            f' text-rendering="geometricPrecision" font-size="{look.font_size * _SCALE}">'
        ),
    ]
    if label:
        parts += _text(look, label, left_width / 2, label_width, (left, fill), bold=False)
    message_centre = left_width + right_width / 2
    parts += _text(look, message, message_centre, message_width, (right, fill), bold=look.bold_message)
    parts += ["</g>", "</svg>"]
    return "".join(parts)


def _text_width(text: str, look: Look, *, bold: bool) -> float:
    if not text:
        return 0
    measured = text_width(text, size=look.font_size, bold=bold)
    if look.odd_widths:
        whole = int(measured)
        return whole if whole % 2 else whole + 1
    return int(measured) + look.letter_spacing * len(text)


def _background(look: Look, left_width: float, right_width: float, colors: tuple[str, str]) -> list[str]:
    width = left_width + right_width
    left, right = colors
    parts = []
    if look.gradient:
        stops = "".join(_stop(stop) for stop in look.gradient)
        parts.append(f'<linearGradient id="s" x2="0" y2="100%">{stops}</linearGradient>')
    if look.radius:
        parts.append(
            f'<clipPath id="r"><rect width="{_n(width)}" height="{look.height}"'
            f' rx="{look.radius}" fill="#fff"/></clipPath>'
        )
        parts.append('<g clip-path="url(#r)">')
    else:
        parts.append('<g shape-rendering="crispEdges">')
    if left_width:
        parts.append(f'<rect width="{_n(left_width)}" height="{look.height}" fill="{left}"/>')
    parts.append(
        f'<rect x="{_n(left_width)}" width="{_n(right_width)}" height="{look.height}" fill="{right}"/>'
    )
    if look.gradient:
        parts.append(f'<rect width="{_n(width)}" height="{look.height}" fill="url(#s)"/>')
    parts.append("</g>")
    return parts


def _stop(stop: GradientStop) -> str:
    color = "" if stop.color is None else f' stop-color="{stop.color}"'
    return f'<stop offset="{stop.offset}"{color} stop-opacity="{stop.opacity}"/>'


def _text(
    look: Look, text: str, centre: float, text_length: float, colors: tuple[str, str | None], *, bold: bool
) -> list[str]:
    """`colors`: the background, and the text's colour (None: the one that reads on it)."""
    if not text:
        return []
    background, chosen = colors
    fill, shadow = ("#333", "#ccc") if is_light(background) else ("#fff", "#010101")
    fill = chosen or fill
    escaped = html.escape(text)
    place = f'x="{_n(centre * _SCALE)}" transform="scale(.1)" textLength="{_n(text_length * _SCALE)}"'
    weight = ' font-weight="bold"' if bold else ""
    parts = []
    if look.shadow:
        parts.append(
            f'<text aria-hidden="true" {place} y="{_n((look.baseline + 1) * _SCALE)}"'
            f' fill="{shadow}" fill-opacity=".3"{weight}>{escaped}</text>'
        )
    parts.append(f'<text {place} y="{_n(look.baseline * _SCALE)}" fill="{fill}"{weight}>{escaped}</text>')
    return parts


def _n(value: float) -> str:
    """A coordinate as SVG takes it: no exponent, at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
