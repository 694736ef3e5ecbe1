"""CORS from the settings, with Litestar's CORSConfig; off (no config) while no origin is allowed.

Litestar answers a preflight (`OPTIONS` with `Origin`) itself, before the router: `204` with the
allowed methods and headers for an allowed origin, `400` for a refused origin, method or
header. Other answers to an allowed origin carry `Access-Control-Allow-Origin`, and expose the
headers below, which a page's script cannot read otherwise.
"""

from __future__ import annotations

from typing import Any

from litestar.config.cors import CORSConfig

from entrypoints.http.schemas import REPLAYED_HEADER
from entrypoints.settings import Settings

EXPOSED_HEADERS = [
    "ETag",
    REPLAYED_HEADER,
    "RateLimit-Limit",
    "RateLimit-Policy",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
]


def cors_config(settings: Settings) -> CORSConfig | None:
    if not settings.cors_allow_origins:
        return None
    methods: Any = _items(settings.cors_allow_methods)  # Litestar's literal type; the setting checks them
    return CORSConfig(
        allow_origins=_items(settings.cors_allow_origins),
        allow_methods=methods,
        allow_headers=_items(settings.cors_allow_headers),
        expose_headers=EXPOSED_HEADERS,
    )


def _items(text: str) -> list[str]:
    return [item for item in text.split(",") if item]
