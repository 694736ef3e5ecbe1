"""The live page's routes with the in-memory store: the HTML with its strict headers, an invalid
namespace refused, everything escaped, the assets with their types, and nothing in the HTML, the
script or the style sheet that would load from anywhere but the service itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from entrypoints.http.page.routes import CONTENT_SECURITY_POLICY, render_page
from tests.unit.conftest import assert_problem, make_client

Client = AsyncTestClient[Any]
STATIC = resources.files("entrypoints.http.page").joinpath("static")
ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}


@pytest.fixture
async def client() -> Any:
    async with make_client(InMemoryCounterRepository()) as test_client:
        yield test_client


class Tags(HTMLParser):
    """Every start tag of a document with its attributes, and the text inside each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


def main_data(text: str) -> dict[str, str | None]:
    (attrs,) = [attrs for tag, attrs in parse(text).tags if tag == "main"]
    return attrs


@pytest.mark.parametrize(
    ("path", "namespace", "counters"),
    [
        ("/page", "default", "/counters"),
        ("/namespaces/default/page", "default", "/counters"),
        ("/namespaces/blog.example/page", "blog.example", "/namespaces/blog.example/counters"),
    ],
)
async def test_the_page_names_its_namespace_and_the_path_of_its_counters(
    client: Client, path: str, namespace: str, counters: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"
    data = main_data(answer.text)
    assert data["data-namespace"] == namespace
    assert data["data-counters"] == counters
    assert f"<title>Counters of {namespace}</title>" in answer.text


def test_the_policy_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for kind in ("script-src", "style-src", "img-src", "connect-src"):
        assert directives[kind] == "'self'", kind
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "namespace", ["a<b", "x%22onload%3D1", "%3Cscript%3E", "-" * 2, "n" * 65, "sp%20ace"]
)
async def test_an_invalid_namespace_is_a_400_problem_not_a_page(client: Client, namespace: str) -> None:
    answer = await client.get(f"/namespaces/{namespace}/page")
    assert_problem(answer, 400, "namespace")


def test_everything_the_page_puts_in_its_html_is_escaped() -> None:
    """Names are restricted to a safe alphabet, so the route refuses this one; the renderer
    escapes it anyway."""
    hostile = "\"><script>alert(1)</script><b a='"
    text = render_page(hostile).decode()
    tags = parse(text)
    assert [tag for tag, _ in tags.tags if tag == "script"] == ["script"]  # its own, nothing else
    assert "<script>alert" not in text
    assert "<b " not in text
    assert main_data(text)["data-namespace"] == hostile  # the attribute holds it as text


async def test_the_html_runs_no_inline_code(client: Client) -> None:
    text = (await client.get("/namespaces/blog.example/page")).text
    tags = parse(text)
    assert tags.scripts == [""]  # one script, from its file
    for tag, attrs in tags.tags:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)


@pytest.mark.parametrize(("name", "media_type"), ASSETS.items())
async def test_the_page_loads_its_assets_by_versioned_urls_served_with_their_types(
    client: Client, name: str, media_type: str
) -> None:
    text = (await client.get("/page")).text
    urls = [
        attrs.get("src") or attrs.get("href") for tag, attrs in parse(text).tags if tag in {"script", "link"}
    ]
    (url,) = [u for u in urls if u and u.split("?")[0].endswith(name)]
    assert re.fullmatch(rf"/page/assets/{re.escape(name)}\?v=[0-9a-f]{{16}}", str(url)), url
    answer = await client.get(str(url))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content == STATIC.joinpath(name).read_bytes()
    head = await client.head(str(url))
    assert head.status_code == 200
    assert head.content == b""


async def test_an_unknown_asset_is_a_404_problem(client: Client) -> None:
    for name in ("page.html", "nothing.js", "..%2Fpage.js"):
        answer = await client.get(f"/page/assets/{name}")
        assert_problem(answer, 404)


# An address that leaves the page's origin: a scheme, or `//host` (protocol-relative).
EXTERNAL = re.compile(r"https?:|//[^/\s]|@import|url\(", re.IGNORECASE)


def without_js_comments(text: str) -> str:
    return re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)


def test_no_asset_refers_to_anything_outside_the_service() -> None:
    files = {path.name: path.read_text() for path in STATIC.iterdir() if path.is_file()}
    assert set(files) == {"page.html", "page.js", "page.css"}
    found = {
        name: EXTERNAL.findall(without_js_comments(text) if name.endswith(".js") else text)
        for name, text in files.items()
    }
    assert found == {"page.html": [], "page.js": [], "page.css": []}
    # Every URL the HTML names is a path of this origin.
    for _, attrs in parse(files["page.html"]).tags:
        for attribute in ("src", "href"):
            if attrs.get(attribute) is not None:
                assert str(attrs[attribute]).startswith(("/", "$")), attrs
    # The script builds its absolute URLs from the page's own origin, and no HTML from text.
    assert "location.origin" in files["page.js"]
    assert "innerHTML" not in files["page.js"]
    assert "eval(" not in files["page.js"]


def test_the_external_url_check_finds_what_it_is_for() -> None:
    for text in (
        '<script src="https://cdn.example/x.js">',
        "<img src=//cdn.example/x.png>",
        "@import 'x.css';",
        "a { background: url(x.png) }",
    ):
        assert EXTERNAL.search(text), text
    assert not EXTERNAL.search(without_js_comments("  // the first LIVE_STREAMS counters\nconst a = 1;"))


async def test_the_page_is_not_an_operation_of_the_api(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert not [path for path in document["paths"] if path.endswith("/page") or "/page/" in path]
