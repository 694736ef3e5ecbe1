"""The badges really load in a browser: headless Chromium shows them as images of the size the
SVG states, from a real server, and a page view through hit.svg counts once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.integration.chromium import CHROMIUM, SKIP_REASON, dump_dom
from tests.integration.server_process import running_server

pytestmark = [pytest.mark.integration, pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)]

BADGES = {
    "hit": "/counters/readme/hit.svg",
    "flat": "/counters/readme/badge.svg?label=%3C/text%3E%3Cscript%3Ex()%3C/script%3E",
    "square": "/counters/readme/badge.svg?style=flat-square&color=%23fe7d37",
    "plastic": "/counters/readme/badge.svg?style=plastic",
    "big": "/counters/readme/badge.svg?style=for-the-badge&labelColor=critical",
}


def _page(base: str) -> str:
    images = "".join(f'<img id="{key}" src="{base}{path}">' for key, path in BADGES.items())
    # window.onload fires once every image has loaded or failed; a failed one is 0 wide.
    return (
        "<!doctype html><html><body>"
        f"{images}<pre id='out'>not loaded</pre><script>"
        "window.onload = () => { document.getElementById('out').textContent = JSON.stringify("
        "[...document.images].map(i => [i.id, i.naturalWidth, i.naturalHeight])); };"
        "</script></body></html>"
    )


def test_badges_load_as_images_and_a_view_counts_once(tmp_path: Path) -> None:
    with running_server({"COUNTER_BACKEND": "memory"}, tmp_path / "server.log") as server:
        page = tmp_path / "readme.html"
        page.write_text(_page(server.url), encoding="utf-8")
        dom = dump_dom(page.as_uri(), tmp_path / "profile")
        count = httpx.get(f"{server.url}/counters/readme", timeout=5).json()["count"]
        sizes = {
            key: httpx.get(f"{server.url}{path}", timeout=5).text
            for key, path in BADGES.items()
            if key != "hit"
        }
    found = re.search(r"<pre id=\"out\">(.*?)</pre>", dom, re.DOTALL)
    assert found is not None, dom[:2000]
    loaded = {key: (width, height) for key, width, height in json.loads(found.group(1))}
    assert set(loaded) == set(BADGES)
    for key, svg in sizes.items():
        width = re.search(r'width="([0-9.]+)" height="([0-9]+)"', svg)
        assert width is not None
        assert loaded[key] == (round(float(width.group(1))), int(width.group(2))), key
    assert loaded["hit"][0] > 0
    assert loaded["hit"][1] == 20
    assert count == 1  # the page's one hit.svg; the read-only badges counted nothing


def test_a_badge_opened_alone_is_a_well_formed_svg_document(tmp_path: Path) -> None:
    with running_server({"COUNTER_BACKEND": "memory"}, tmp_path / "server.log") as server:
        dom = dump_dom(f"{server.url}/counters/readme/badge.svg?label=a%26b", tmp_path / "profile")
    assert "<svg" in dom
    assert "error on line" not in dom  # Chromium's XML parse error page
    assert "a&amp;b: 0" in dom
