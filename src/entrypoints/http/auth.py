"""The admin guard: `Authorization: Bearer <COUNTER_ADMIN_TOKEN>`, compared in constant time.

Setting and deleting one counter also take that counter's own admin key as the bearer token
(`require_admin_or_counter_key`), and setting a resettable counter takes no token at all; the
service judges the key (CounterService.authorize), and judges it again with the write itself
(CounterService.set / delete with `admin=False`), so that a counter deleted and made again by
someone else in between is not changed."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.model import CounterId
from domain.services import CounterService
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


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _sep, presented = connection.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    return presented if scheme.lower() == "bearer" and presented else None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who may change one counter: the holder of the service admin token (`admin`), or a caller
    presenting `key` (perhaps none), whom the service judges again with its write."""

    admin: bool
    key: str | None = None


async def require_admin_or_counter_key(
    connection: ASGIConnection[Any, Any, Any, Any],
    service: CounterService,
    counter: CounterId,
    *,
    reset: bool,
) -> Caller:
    """Let the request through with the service admin token, the counter's own admin key, or,
    to set it (`reset`), none when the counter is resettable; else refuse as `require_admin`."""
    expected: bytes = connection.app.state.get(ADMIN_TOKEN_STATE_KEY, b"")
    presented = _bearer(connection)
    if expected and presented is not None and hmac.compare_digest(presented.encode(), expected):
        return Caller(admin=True)
    if await service.authorize(counter, presented, reset=reset):
        return Caller(admin=False, key=presented)
    require_admin(connection, connection.route_handler)  # refuses: this is not the admin token
    raise UnauthorizedError("the admin token is wrong")  # not reached
