"""Schemathesis hooks for test_openapi_conformance.py (loaded through SCHEMATHESIS_HOOKS).

The service takes a JSON integer only as an integer literal: `1.0` and `1e0` are refused (400),
a rule of its README. JSON Schema cannot state it (since draft 6 an `integer` is any number
whose fraction is zero), so Schemathesis sends `{"by": 2740.0}` as valid data. Each generated
body here has such numbers written as the integers they are, and nothing else changed.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_integers(item) for item in value]
    return value


@schemathesis.hook
def map_body(_context: schemathesis.HookContext, body: Any) -> Any:
    return _as_integers(body)
