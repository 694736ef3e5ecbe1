"""The admin routes of `/abacus`: `set`, `reset`, `update` and `delete` with the counter's own
admin key (the one `create` answered) as `Authorization: Bearer <admin_key>` or `?token=`.

Refusals in Abacus's order and words, as Abacus answers them since it stopped running the route
after a refused key: no token, 400; a counter without an admin key (made by a hit, by another
API, or missing), 400; another key, 401; then the route's own checks of `value`. A missing
counter has no admin key here (the key lives and dies with its counter), so it gets the 400
that Abacus gives a key never created, never Abacus's 409 for a key whose counter expired
before its admin key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from domain.model import CounterId
from domain.services import CounterService
from entrypoints.http.abacus.answers import AbacusError, answer
from entrypoints.http.abacus.docs import (
    ABACUS_SECURITY,
    ADMIN_ERRORS,
    INTEGER_SCHEMA,
    JSON,
    STEP_ERRORS,
    TAG,
    operation_id,
)
from entrypoints.http.abacus.names import COUNTER_IN_DEFAULT, full_key
from entrypoints.http.abacus.schemas import DeletedBody, ValueBody
from entrypoints.http.compat.numbers import int64
from entrypoints.http.openapi import DocumentedOperation

BEARER = "Bearer "  # exactly, as Abacus reads it; anything else falls back to ?token=
# A message, not a secret.
TOKEN_REQUIRED = (
    "Token is required, please provide a token in the format of a Bearer token header or ?token=ADMIN_TOKEN"  # noqa: S105
)
VALUE_REQUIRED = "value is required, please provide a number in the fmt of ?value=NEW_VALUE"
BY_ZERO = "changing value by 0 does nothing, please provide a non-zero value in the fmt of ?value=NEW_VALUE"
Req = Request[Any, Any, Any]

SetValueParam = Annotated[
    str | None,
    QueryParameter(description="The new value, a signed 64-bit integer.", schema_extra=INTEGER_SCHEMA),
]
UpdateValueParam = Annotated[
    str | None,
    QueryParameter(description="What to add: a signed 64-bit integer, not 0.", schema_extra=INTEGER_SCHEMA),
]


def _token(request: Req) -> str:
    header = request.headers.get("authorization", "")
    if header.startswith(BEARER):
        return header.removeprefix(BEARER)
    token: str | None = request.query_params.get("token")
    if not token:
        raise AbacusError(400, TOKEN_REQUIRED)
    return token


@dataclass(frozen=True, slots=True)
class Owned:
    """The counter the path names and the request's token, its admin key when it was checked.
    A set, reset or delete presents the key again with its write (`admin=False`), so that a
    counter deleted and made again by someone else meanwhile is refused, not changed."""

    counter: CounterId
    key: str


async def provide_owned(
    request: Req, counter_service: NamedDependency[CounterService], counter: NamedDependency[CounterId]
) -> Owned:
    """The counter the path names, once the request's token is its admin key."""
    key = _token(request)
    await counter_service.check_owner(counter, key)
    return Owned(counter, key)


_ADMIN: dict[str, Any] = {
    "tags": [TAG],
    "media_type": JSON,
    "status_code": 200,
    "security": ABACUS_SECURITY,
    "operation_class": DocumentedOperation,
    "dependencies": {**COUNTER_IN_DEFAULT, "owned": Provide(provide_owned)},
}


def _value(text: str | None, not_a_number: str) -> int:
    if not text:
        raise AbacusError(400, VALUE_REQUIRED)
    value = int64(text)
    if value is None:
        raise AbacusError(400, not_a_number)
    return value


def _paths(operation: str) -> list[str]:
    return [f"/{operation}/{{namespace:str}}/{{key:str}}", f"/{operation}/{{key:str}}"]


@post(
    _paths("set"),
    operation_id=operation_id("Set"),
    summary="Abacus: set a counter (its admin key)",
    responses=ADMIN_ERRORS,
    **_ADMIN,
)
async def set_value(
    counter_service: NamedDependency[CounterService],
    owned: NamedDependency[Owned],
    value: SetValueParam = None,
) -> Response[ValueBody]:
    new = _value(value, "value must be a number")
    replaced = await counter_service.set(owned.counter, new, admin=False, admin_key=owned.key, key_only=True)
    return answer(200, {"value": replaced.counter.count})


@post(
    _paths("reset"),
    operation_id=operation_id("Reset"),
    summary="Abacus: set a counter to 0 (its admin key)",
    responses=ADMIN_ERRORS,
    **_ADMIN,
)
async def reset(
    counter_service: NamedDependency[CounterService],
    owned: NamedDependency[Owned],
) -> Response[ValueBody]:
    replaced = await counter_service.set(owned.counter, 0, admin=False, admin_key=owned.key, key_only=True)
    return answer(200, {"value": replaced.counter.count})


@post(
    _paths("update"),
    operation_id=operation_id("Update"),
    summary="Abacus: add to a counter (its admin key)",
    responses={**ADMIN_ERRORS, **STEP_ERRORS},
    **_ADMIN,
)
async def update(
    counter_service: NamedDependency[CounterService],
    owned: NamedDependency[Owned],
    value: UpdateValueParam = None,
) -> Response[ValueBody]:
    by = _value(value, "value must be a number, this means no floats.")
    if by == 0:
        raise AbacusError(400, BY_ZERO)
    return answer(200, {"value": (await counter_service.increment(owned.counter, by)).counter.count})


@post(
    _paths("delete"),
    operation_id=operation_id("Delete"),
    summary="Abacus: delete a counter (its admin key)",
    description="The counter and its admin key are gone; its name is free for a hit or a create.",
    responses=ADMIN_ERRORS,
    **_ADMIN,
)
async def delete(
    counter_service: NamedDependency[CounterService],
    owned: NamedDependency[Owned],
) -> Response[DeletedBody]:
    await counter_service.delete(owned.counter, admin=False, admin_key=owned.key)
    return answer(200, {"message": f"Deleted key: {full_key(owned.counter)}", "status": "ok"})


ADMIN_ROUTES = [set_value, reset, update, delete]
