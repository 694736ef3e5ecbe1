"""The admin guard: `Authorization: Bearer <COUNTER_ADMIN_TOKEN>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from entrypoints.http.errors import AdminDisabledError, UnauthorizedError

ADMIN_TOKEN_STATE_KEY = "admin_token"  # noqa: S105 (a state key, not a secret)


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    expected: bytes = connection.app.state.get(ADMIN_TOKEN_STATE_KEY, b"")
    if not expected:
        raise AdminDisabledError(
            "admin operations are disabled: set COUNTER_ADMIN_TOKEN to a secret and send it as"
            " 'Authorization: Bearer <token>'"
        )
    scheme, _sep, presented = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise UnauthorizedError("send the admin token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), expected):
        raise UnauthorizedError("the admin token is wrong")
