"""The four looks a badge can take, after shields.io's styles of the same names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BadgeStyle(StrEnum):
    FLAT = "flat"
    FLAT_SQUARE = "flat-square"
    PLASTIC = "plastic"
    FOR_THE_BADGE = "for-the-badge"


@dataclass(frozen=True, slots=True)
class GradientStop:
    offset: str
    opacity: str
    color: str | None = None  # None: black, SVG's default stop colour


@dataclass(frozen=True, slots=True)
class Look:
    height: int
    font_size: int  # pixels
    padding: int  # pixels on each side of a text
    baseline: float  # the texts' baseline, pixels from the top
    radius: int  # corner radius; 0 draws square corners with crisp edges
    gradient: tuple[GradientStop, ...] = ()  # a sheen laid over the whole badge
    shadow: bool = False  # a faint copy of each text one pixel lower
    uppercase: bool = False
    letter_spacing: float = 0.0  # pixels after each character, counted in the width
    bold_message: bool = False
    odd_widths: bool = True  # whole, odd text widths: the centred text sits on the pixel grid


LOOKS: dict[BadgeStyle, Look] = {
    BadgeStyle.FLAT: Look(
        height=20,
        font_size=11,
        padding=5,
        baseline=14,
        radius=3,
        gradient=(GradientStop("0", ".1", "#bbb"), GradientStop("1", ".1")),
        shadow=True,
    ),
    BadgeStyle.FLAT_SQUARE: Look(height=20, font_size=11, padding=5, baseline=14, radius=0),
    BadgeStyle.PLASTIC: Look(
        height=18,
        font_size=11,
        padding=5,
        baseline=13,
        radius=4,
        gradient=(
            GradientStop("0", ".7", "#fff"),
            GradientStop(".1", ".1", "#aaa"),
            GradientStop(".9", ".3"),
            GradientStop("1", ".5"),
        ),
        shadow=True,
    ),
    BadgeStyle.FOR_THE_BADGE: Look(
        height=28,
        font_size=10,
        padding=12,
        baseline=17.5,
        radius=0,
        uppercase=True,
        letter_spacing=1.25,
        bold_message=True,
        odd_widths=False,
    ),
}
