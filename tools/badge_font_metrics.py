# ruff: noqa: INP001  (a script run by hand, not a package)
"""Writes src/entrypoints/http/badges/font_metrics.py: the advance widths the badge renderer
measures text with, read from a font file with fontTools.

Badges are drawn in Verdana (the font shields.io measures with), but Verdana is not free to
ship or to install here. DejaVu Sans (Debian's fonts-dejavu-core) descends from Bitstream Vera,
whose proportions are close to Verdana's; browsers without Verdana fall back to it (the badge's
font-family names it). The renderer needs only the table this writes, never fontTools.

    apt-get install -y fonts-dejavu-core      # usually there already
    .venv/bin/python tools/badge_font_metrics.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fontTools.ttLib import TTFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
REGULAR_FONT = FONT_DIR / "DejaVuSans.ttf"
BOLD_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"
OUTPUT = Path(__file__).resolve().parent.parent / "src/entrypoints/http/badges/font_metrics.py"

# Basic Latin, Latin-1 and Latin Extended-A/B, Greek, Cyrillic, general punctuation, currency.
RANGES = ((0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x2000, 0x206F), (0x20A0, 0x20BF))
MISSING = -1  # a code point of a range that the font has no glyph for
PER_LINE = 18


def advances(font_path: Path) -> tuple[int, list[int]]:
    """The font's units per em, and the advance width of each code point of RANGES (MISSING
    where the font has no glyph), in order."""
    font = TTFont(font_path)
    cmap = font.getBestCmap()
    metrics = font["hmtx"]
    widths = []
    for first, last in RANGES:
        for code in range(first, last + 1):
            glyph = cmap.get(code)
            widths.append(MISSING if glyph is None else int(metrics[glyph][0]))
    return int(font["head"].unitsPerEm), widths


def _describe(font_path: Path) -> str:
    names = TTFont(font_path)["name"]
    return f"{names.getDebugName(4)} {names.getDebugName(5)}"


def _table(name: str, widths: list[int]) -> list[str]:
    lines = [f"{name} = ("]
    for start in range(0, len(widths), PER_LINE):
        chunk = " ".join(str(w) for w in widths[start : start + PER_LINE])
        lines.append(f'    "{chunk} "')
    lines[-1] = lines[-1].removesuffix(' "') + '"'
    lines.append(")")
    return lines


def module_text(regular: Path, bold: Path) -> str:
    units, regular_widths = advances(regular)
    bold_units, bold_widths = advances(bold)
    if units != bold_units:
        raise SystemExit("the regular and the bold font differ in units per em")
    ranges = ", ".join(f"(0x{a:X}, 0x{b:X})" for a, b in RANGES)
    lines = [
        f'"""Advance widths of {_describe(regular)} and {_describe(bold)}, in font units',
        "(UNITS_PER_EM to an em), of each code point of RANGES in order; -1 where the font has no glyph.",
        "",
        "Written by tools/badge_font_metrics.py from the fonts of Debian's fonts-dejavu-core; do not",
        'edit by hand, run the script again."""',
        "",
        f"UNITS_PER_EM = {units}",
        f"RANGES = ({ranges})",
        "",
        *_table("REGULAR", regular_widths),
        "",
        *_table("BOLD", bold_widths),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regular", type=Path, default=REGULAR_FONT)
    parser.add_argument("--bold", type=Path, default=BOLD_FONT)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    options = parser.parse_args()
    options.output.write_text(module_text(options.regular, options.bold), encoding="utf-8")
    sys.stdout.write(f"wrote {options.output}\n")


if __name__ == "__main__":
    main()
