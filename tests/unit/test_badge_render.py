"""The badge renderer: valid SVG, escaped text, widths measured from the font table, the styles
and the colours."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from entrypoints.http.badges import font_metrics
from entrypoints.http.badges.colors import InvalidColorError, is_light, parse_color
from entrypoints.http.badges.query import CountFormat, format_count
from entrypoints.http.badges.render import BadgeTextTooLongError, render_badge
from entrypoints.http.badges.styles import BadgeStyle
from entrypoints.http.badges.widths import text_width

SVG_NS = "{http://www.w3.org/2000/svg}"
STYLES = list(BadgeStyle)
HEIGHTS = {"flat": 20, "flat-square": 20, "plastic": 18, "for-the-badge": 28}
HOSTILE = "</text><script>alert('x')</script>&\"<"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG_NS}text") if t.get("aria-hidden") != "true"]


@pytest.mark.parametrize("style", STYLES)
def test_every_style_is_valid_svg_with_a_title_and_its_height(style: BadgeStyle) -> None:
    root = parse(render_badge("visits", "1234", style=style))
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("height") == str(HEIGHTS[style])
    title = root.find(f"{SVG_NS}title")
    assert title is not None
    expected = "VISITS: 1234" if style is BadgeStyle.FOR_THE_BADGE else "visits: 1234"
    assert title.text == expected
    assert root.get("aria-label") == expected
    assert texts(root) == expected.split(": ")
    widths = [
        float(r.get("width", "0")) for r in root.iter(f"{SVG_NS}rect") if r.get("fill", "").startswith("#")
    ]
    # the two halves, the clip path's rectangle (as wide as the badge) aside
    assert sum(w for w in widths if w != float(root.get("width", "0"))) == float(root.get("width", "0"))


def test_styles_differ_as_shields_draws_them() -> None:
    flat, square, plastic = (render_badge("a", "1", style=s) for s in ("flat", "flat-square", "plastic"))
    assert "linearGradient" in flat
    assert 'rx="3"' in flat
    assert "linearGradient" not in square
    assert "crispEdges" in square
    assert 'rx="4"' in plastic
    assert plastic.count("<stop") == 4


def test_hostile_text_is_escaped_and_stays_text() -> None:
    svg = render_badge(HOSTILE, HOSTILE)
    root = parse(svg)
    assert "<script" not in svg
    assert root.find(f".//{SVG_NS}script") is None
    assert texts(root) == [HOSTILE, HOSTILE]
    title = root.find(f"{SVG_NS}title")
    assert title is not None
    assert title.text == f"{HOSTILE}: {HOSTILE}"
    for quote in ("&#x27;", "&quot;", "&amp;", "&lt;", "&gt;"):
        assert quote in svg


def test_control_characters_are_removed() -> None:
    root = parse(render_badge("a\x00b\x1b[31m\tc\n", "1\x7f2\ufffe"))
    assert texts(root) == ["ab[31mc", "12"]


def test_texts_have_a_bounded_length() -> None:
    render_badge("x" * 64, "y" * 128)
    with pytest.raises(BadgeTextTooLongError):
        render_badge("x" * 65, "1")
    with pytest.raises(BadgeTextTooLongError):
        render_badge("x", "1" * 129)


def test_widths_grow_with_the_text_and_follow_the_font() -> None:
    widths = [float(parse(render_badge("hits", "1" * n)).get("width", "0")) for n in range(1, 8)]
    assert widths == sorted(widths)
    assert len(set(widths)) == len(widths)
    assert text_width("W", size=11) > text_width("i", size=11)
    assert text_width("mmmm", size=11) > text_width("iiii", size=11)
    assert text_width("abc", size=11, bold=True) > text_width("abc", size=11)
    assert text_width("ab", size=10, letter_spacing=1.25) == pytest.approx(text_width("ab", size=10) + 2.5)
    assert text_width("ab", size=22) == pytest.approx(2 * text_width("ab", size=11))


def test_characters_outside_the_table_have_a_width() -> None:
    assert text_width("日本", size=11) == pytest.approx(22)  # wide: one em each
    assert 4 < text_width("\U00010348", size=11) < 11  # a letter of no table: an average letter
    assert text_width("e\u0301", size=11) == text_width("e", size=11)  # a combining accent adds nothing


def test_an_empty_label_draws_the_message_alone() -> None:
    root = parse(render_badge("", "42"))
    assert texts(root) == ["42"]
    title = root.find(f"{SVG_NS}title")
    assert title is not None
    assert title.text == "42"


def test_for_the_badge_is_upper_case_with_a_bold_message() -> None:
    root = parse(render_badge("Page views", "12k", style="for-the-badge"))
    assert texts(root) == ["PAGE VIEWS", "12K"]
    bold = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("font-weight") == "bold"]
    assert bold == ["12K"]


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="round"):
        render_badge("a", "1", style="round")


@pytest.mark.parametrize(
    ("given", "hex_color"),
    [
        ("brightgreen", "#44cc11"),
        ("success", "#44cc11"),
        ("critical", "#e05d44"),
        ("grey", "#555555"),
        ("gray", "#555555"),
        ("inactive", "#9f9f9f"),
        ("#ABC", "#aabbcc"),
        ("abc", "#aabbcc"),
        ("#00ff7F", "#00ff7f"),
        ("00ff7f", "#00ff7f"),
    ],
)
def test_colours_are_names_or_hex(given: str, hex_color: str) -> None:
    assert parse_color(given) == hex_color
    assert f'fill="{hex_color}"' in render_badge("a", "1", color=given)


@pytest.mark.parametrize(
    "given", ["", "#", "#ab", "#abcd", "ggg", "#12345g", "Blue", "red;", "url(#x)", "#abcdef0"]
)
def test_other_colours_are_refused(given: str) -> None:
    with pytest.raises(InvalidColorError):
        parse_color(given)
    with pytest.raises(InvalidColorError):
        render_badge("a", "1", label_color=given)


def test_text_is_dark_on_light_colours_and_white_on_dark_ones() -> None:
    assert is_light("#ffffff")
    assert is_light("#dfb317") is False  # shields' yellow still takes white text
    assert not is_light("#007ec6")
    root = parse(render_badge("a", "1", color="fff"))
    message = texts(root)[1]
    fills = [
        t.get("fill")
        for t in root.iter(f"{SVG_NS}text")
        if t.text == message and t.get("aria-hidden") is None
    ]
    assert fills == ["#333"]


@pytest.mark.parametrize(
    ("count", "number_format", "text"),
    [
        (1234567, CountFormat.PLAIN, "1234567"),
        (-5, CountFormat.PLAIN, "-5"),
        (1234567, CountFormat.GROUPED, "1,234,567"),
        (999, CountFormat.SHORT, "999"),
        (1000, CountFormat.SHORT, "1k"),
        (1250, CountFormat.SHORT, "1.2k"),
        (999_950, CountFormat.SHORT, "1M"),
        (-2_500_000, CountFormat.SHORT, "-2.5M"),
        (2**63 - 1, CountFormat.SHORT, "9.2E"),
    ],
)
def test_counts_are_written_plainly_unless_asked(count: int, number_format: CountFormat, text: str) -> None:
    assert format_count(count, number_format) == text


def test_the_width_table_is_what_the_script_reads_from_the_font() -> None:
    """The table is data derived from a font file; where that font and fontTools are at hand,
    reading it again gives the same numbers."""
    pytest.importorskip("fontTools")
    script = Path(__file__).resolve().parents[2] / "tools" / "badge_font_metrics.py"
    spec = importlib.util.spec_from_file_location("badge_font_metrics", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.REGULAR_FONT.exists() or not module.BOLD_FONT.exists():
        pytest.skip("fonts-dejavu-core is not installed")
    units, regular = module.advances(module.REGULAR_FONT)
    _, bold = module.advances(module.BOLD_FONT)
    assert units == font_metrics.UNITS_PER_EM
    assert regular == [int(w) for w in font_metrics.REGULAR.split()]
    assert bold == [int(w) for w in font_metrics.BOLD.split()]
    assert module.RANGES == font_metrics.RANGES


# The README shows these files as its example badges; each must be what the renderer draws today.
README_BADGES = {
    "views-flat.svg": ("views", "1,234", {"color": "blue", "style": "flat"}),
    "views-flat-square.svg": ("views", "1,234", {"color": "green", "style": "flat-square"}),
    "views-plastic.svg": ("views", "1,234", {"color": "orange", "style": "plastic"}),
    "views-for-the-badge.svg": ("views", "1,234", {"color": "#8a2be2", "style": "for-the-badge"}),
}
README_BADGE_DIR = Path(__file__).resolve().parents[2] / "docs" / "badges"


@pytest.mark.parametrize("name", sorted(README_BADGES))
def test_the_readme_example_badges_are_what_the_renderer_draws(name: str) -> None:
    label, message, options = README_BADGES[name]
    drawn = render_badge(label, message, **options)
    assert (README_BADGE_DIR / name).read_text(encoding="utf-8") == drawn, (
        f"docs/badges/{name} is stale: write render_badge{(label, message, options)!r} to it"
    )
