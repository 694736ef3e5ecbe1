"""The page that watches a namespace's counters: `GET /namespaces/{namespace}/page`, and
`GET /page` for the namespace `default`, with its one script and one style sheet.

The HTML, the script and the style sheet are package data (static/), served by the service
itself: the page loads nothing from anywhere else and works with no internet. Its
Content-Security-Policy allows this origin only, and no inline script or style, so nothing the
page shows can run. The page is a user interface, like the Swagger UI: it is left out of the
OpenAPI document, whose operations are the API's.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from typing import Annotated

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter

from domain.model import DEFAULT_NAMESPACE, check_name
from entrypoints.http.controllers import ExactAllowController
from entrypoints.http.namespaced import NamespaceParam

PAGE_PATH = "/page"
ASSETS_PATH = f"{PAGE_PATH}/assets"
# Litestar adds `; charset=utf-8` to a text type.
HTML = "text/html"
_ASSET_TYPES = {"page.js": "text/javascript", "page.css": "text/css"}

# This origin only, nothing inline, no plugins, no forms, framed only by itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_COMMON_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The HTML is checked with the server on every load (it names the assets' current versions);
# an asset's URL carries a hash of its content, so a browser keeps it until the URL changes.
PAGE_HEADERS = {**_COMMON_HEADERS, "Cache-Control": "no-cache"}
ASSET_HEADERS = {**_COMMON_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # changes with the content: the page's URL of the asset carries it


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


@cache
def _load(name: str) -> Asset:
    body = _static(name)
    return Asset(body, _ASSET_TYPES[name], hashlib.sha256(body).hexdigest()[:16])


def asset(name: str) -> Asset | None:
    """The asset of that name, read once; None for any other name."""
    return _load(name) if name in _ASSET_TYPES else None


def asset_url(name: str) -> str:
    return f"{ASSETS_PATH}/{name}?v={_load(name).version}"


@cache
def _template() -> Template:
    return Template(_static("page.html").decode())


def counters_path(namespace: str) -> str:
    """The API path of a namespace's counters: `/counters` for the namespace `default`."""
    return "/counters" if namespace == DEFAULT_NAMESPACE else f"/namespaces/{namespace}/counters"


def render_page(namespace: str) -> bytes:
    """The page of a namespace; every value it puts in the HTML is escaped."""
    values = {
        "namespace": namespace,
        "counters": counters_path(namespace),
        "js": asset_url("page.js"),
        "css": asset_url("page.css"),
    }
    return _template().substitute({name: html.escape(value) for name, value in values.items()}).encode()


def _page(namespace: str) -> Response[bytes]:
    body = render_page(check_name(namespace, "namespace"))
    return Response(body, media_type=HTML, headers=PAGE_HEADERS)


class PageController(ExactAllowController):
    """The live page of a namespace's counters, and its assets."""

    path = "/"
    include_in_schema = False

    @get(PAGE_PATH, operation_id="defaultNamespacePage", media_type=HTML, sync_to_thread=False)
    def default_page(self) -> Response[bytes]:
        """The counters of the namespace `default`, their live values, badges and embed snippets."""
        return _page(DEFAULT_NAMESPACE)

    @get(
        "/namespaces/{namespace:str}/page",
        operation_id="namespacePage",
        media_type=HTML,
        sync_to_thread=False,
    )
    def namespace_page(self, namespace: NamespaceParam) -> Response[bytes]:
        """The counters of a namespace, their live values, badges and embed snippets; an invalid
        namespace is a 400 problem."""
        return _page(namespace)

    @get(f"{ASSETS_PATH}/{{name:str}}", operation_id="pageAsset", sync_to_thread=False)
    def page_asset(
        self, name: Annotated[str, PathParameter(description="`page.js` or `page.css`.")]
    ) -> Response[bytes]:
        """The page's script or style sheet."""
        found = asset(name)
        if found is None:
            raise NotFoundException(f"no page asset {name!r}")
        return Response(found.body, media_type=found.media_type, headers=ASSET_HEADERS)
