"""How wide a text is drawn, in pixels, from the advance widths in font_metrics.py.

shields.io measures its badges the same way (the sum of the characters' advances, no kerning);
the SVG then asks the browser to draw each text exactly that wide (`textLength`), so a font with
other metrics than the table's still fills its box.
"""

from __future__ import annotations

import unicodedata
from functools import cache

from entrypoints.http.badges import font_metrics


def _table(advances: str) -> dict[str, int]:
    widths = [int(w) for w in advances.split()]
    codes = [code for first, last in font_metrics.RANGES for code in range(first, last + 1)]
    if len(codes) != len(widths):
        raise ValueError("font_metrics: the table does not match its ranges")
    return {chr(code): width for code, width in zip(codes, widths, strict=True) if width >= 0}


_REGULAR = _table(font_metrics.REGULAR)
_BOLD = _table(font_metrics.BOLD)


def _fallback(table: dict[str, int]) -> int:
    # A letter outside the table is taken as wide as an average Latin letter: most scripts'
    # letters are about that wide (Greek, Cyrillic, Armenian, Hebrew...).
    letters = [table[c] for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"]
    return round(sum(letters) / len(letters))


_FALLBACK = {False: _fallback(_REGULAR), True: _fallback(_BOLD)}


@cache
def _advance(char: str, *, bold: bool) -> int:
    table = _BOLD if bold else _REGULAR
    width = table.get(char)
    if width is not None:
        return width
    if unicodedata.combining(char) or unicodedata.category(char) in {"Mn", "Me", "Cf"}:
        return 0  # drawn on the letter before it, or not drawn at all
    if unicodedata.east_asian_width(char) in {"W", "F"}:
        return font_metrics.UNITS_PER_EM  # CJK ideographs, kana, hangul, emoji: one em
    return _FALLBACK[bold]


def text_width(text: str, *, size: float, bold: bool = False, letter_spacing: float = 0.0) -> float:
    """The width of `text` set in `size` pixel Verdana (or its table's stand-in), with
    `letter_spacing` pixels after each character."""
    units = sum(_advance(char, bold=bold) for char in text)
    return units * size / font_metrics.UNITS_PER_EM + letter_spacing * len(text)
