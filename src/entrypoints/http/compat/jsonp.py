"""JSON answers and JSONP (`?callback=name`) for the compatible APIs.

A callback must be a JavaScript name or a dotted path of names (`cb`, `window.counter.show`):
anything else would put the caller's text into a script that another site runs, so it is refused
whatever the original service did with it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Response

CALLBACK_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]{0,63}")
JSON_TYPE = "application/json; charset=utf-8"
JSONP_TYPE = "application/javascript; charset=utf-8"
MALFORMED_CALLBACK = "Malformed callback"


def valid_callback(callback: str) -> bool:
    return CALLBACK_RE.fullmatch(callback) is not None


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    """`body` as compact JSON with its keys in the order given."""
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON_TYPE, headers=headers)


def jsonp_answer(callback: str, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    """`callback(body);` with 200 (a script tag sees no status); `callback` is a valid one."""
    script = f"{callback}(".encode() + msgspec.json.encode(body) + b");"
    return Response(script, status_code=200, media_type=JSONP_TYPE, headers=headers)
