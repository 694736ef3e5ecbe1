"""The routes of `/countapi`: CountAPI's GET-only API on CounterService.

A key made by `/hit` takes steps of 0 or 1 and cannot be set; `/create` fixes the bounds and
whether `/set` is allowed. Every counter made here expires six months after its last write.
`set` and `update` never create: a missing key answers 404, as CountAPI's did. A route that
names a key takes it, checked, from the router's `counter` dependency (names.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, Router, get
from litestar.di import NamedDependency, Provide

from domain.errors import CounterExistsError, ForbiddenError, StepOutOfRangeError
from domain.model import DEFAULT_NAMESPACE, INT64_MAX, INT64_MIN, CounterId
from domain.rules import STEP_LIMIT, Rules
from domain.services import CounterService
from entrypoints.http.compat.numbers import plain_integer
from entrypoints.http.controllers import service_version
from entrypoints.http.countapi.answers import BadRequestError, answer, countapi_cors
from entrypoints.http.countapi.names import COUNTER, MalformedNameError, check
from entrypoints.http.head import serving_head

TTL_SECONDS = 15_770_000  # CountAPI's "six months" (its own sample ttl was 15 769 998 014 ms)
HIT_RULES = Rules(min_step=0, max_step=1, resettable=False, ttl_seconds=TTL_SECONDS)
MALFORMED = "Malformed Namespace/Key"
INFO_FIELDS = (
    "namespace",
    "key",
    "ttl",
    "created",
    "update_lowerbound",
    "update_upperbound",
    "enable_reset",
    "value",
)
Req = Request[Any, Any, Any]


@dataclass(slots=True)
class CountapiStats:
    """`/countapi/stats`, counted by this server process since it started."""

    keys_created: int = 0
    keys_updated: int = 0
    requests: int = 0


def _integer(
    request: Req, name: str, default: int | None, low: int = INT64_MIN, high: int = INT64_MAX
) -> int:
    text = request.query_params.get(name)
    if text is None and default is not None:
        return default
    number = None if text is None else plain_integer(text)
    if number is None:
        raise BadRequestError(f"{name} must be an integer")
    if not low <= number <= high:
        raise BadRequestError(f"{name} must be an integer from {low} to {high}")
    return number


def _flag(request: Req, name: str) -> bool:
    text = request.query_params.get(name, "0").lower()
    if text not in {"0", "1", "true", "false"}:
        raise BadRequestError(f"{name} must be 1, 0, true or false")
    return text in {"1", "true"}


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _paths(operation: str) -> list[str]:
    return [f"/{operation}/{{first:str}}", f"/{operation}/{{first:str}}/{{second:str}}"]


async def _add(
    request: Req, service: CounterService, stats: CountapiStats, counter: CounterId, by: int
) -> Response[bytes]:
    """Adds `by` within the key's bounds: 403 with the value unchanged outside them."""
    current = await service.get(counter)
    if not current.exists:
        return answer(request, 404, {"value": None}, counter)
    rules = current.rules or Rules()
    if by == 0 or not rules.allows(by):  # a zero step changes nothing, so it is only checked
        return answer(request, 200 if rules.allows(by) else 403, {"value": current.count}, counter)
    try:
        result = await service.increment(counter, by)
    except StepOutOfRangeError:
        return answer(request, 403, {"value": (await service.get(counter)).count}, counter)
    stats.keys_updated += 1
    return answer(request, 200, {"value": result.counter.count}, counter)


@get(_paths("hit"))
async def hit(
    request: Req,
    counter_service: NamedDependency[CounterService],
    countapi_stats: NamedDependency[CountapiStats],
    counter: NamedDependency[CounterId],
) -> Response[bytes]:
    """Adds 1, making a missing key first (steps 0..1, no set)."""
    if await counter_service.ensure(counter, HIT_RULES):
        countapi_stats.keys_created += 1
    return await _add(request, counter_service, countapi_stats, counter, 1)


@get(_paths("update"))
async def update(
    request: Req,
    counter_service: NamedDependency[CounterService],
    countapi_stats: NamedDependency[CountapiStats],
    counter: NamedDependency[CounterId],
) -> Response[bytes]:
    """Adds `amount`, which must lie within the key's bounds."""
    amount = _integer(request, "amount", None)
    return await _add(request, counter_service, countapi_stats, counter, amount)


@get(_paths("get"))
async def get_value(
    request: Req,
    counter_service: NamedDependency[CounterService],
    counter: NamedDependency[CounterId],
) -> Response[bytes]:
    current = await counter_service.get(counter, touch=True)
    if not current.exists:
        return answer(request, 404, {"value": None}, counter)
    return answer(request, 200, {"value": current.count}, counter)


@get(_paths("set"))
async def set_value(
    request: Req,
    counter_service: NamedDependency[CounterService],
    countapi_stats: NamedDependency[CountapiStats],
    counter: NamedDependency[CounterId],
) -> Response[bytes]:
    """Sets `value` on a key created with `enable_reset`; answers the previous value."""
    value = _integer(request, "value", None)
    current = await counter_service.get(counter)
    if not current.exists:
        return answer(request, 404, {"old_value": None, "value": None}, counter)
    try:
        replaced = await counter_service.set(counter, value, admin=False)
    except ForbiddenError:
        return answer(request, 403, {"old_value": current.count, "value": current.count}, counter)
    countapi_stats.keys_updated += 1
    return answer(request, 200, {"old_value": replaced.previous, "value": replaced.counter.count}, counter)


@get(_paths("info"))
async def info(
    request: Req,
    counter_service: NamedDependency[CounterService],
    counter: NamedDependency[CounterId],
) -> Response[bytes]:
    """The key's eight fields; `ttl` (milliseconds left) and `created` (epoch ms)."""
    current = await counter_service.get(counter)
    if not current.exists:
        return answer(request, 404, dict.fromkeys(INFO_FIELDS), counter)
    rules = current.rules or Rules()
    expires = _ms(current.expires_at)
    now = int(datetime.now(UTC).timestamp() * 1000)
    body = {
        "namespace": counter.namespace,
        "key": counter.key,
        "ttl": None if expires is None else max(0, expires - now),
        "created": _ms(current.created_at),
        "update_lowerbound": rules.min_step,
        "update_upperbound": rules.max_step,
        "enable_reset": rules.resettable,
        "value": current.count,
    }
    return answer(request, 200, body, counter)


@get("/create")
async def create(
    request: Req,
    counter_service: NamedDependency[CounterService],
    countapi_stats: NamedDependency[CountapiStats],
) -> Response[bytes]:
    """Creates a key (a new UUID when none is given) with its bounds; 409 when it exists."""
    value = _integer(request, "value", 0)
    lower = _integer(request, "update_lowerbound", -1, -STEP_LIMIT, STEP_LIMIT)
    upper = _integer(request, "update_upperbound", 1, -STEP_LIMIT, STEP_LIMIT)
    resettable = _flag(request, "enable_reset")
    namespace = check(request.query_params.get("namespace") or DEFAULT_NAMESPACE)
    key = check(request.query_params.get("key") or str(uuid.uuid4()))
    if upper < 0:
        raise BadRequestError("update_upperbound must be positive")
    if lower > 0:
        raise BadRequestError("update_lowerbound must be negative")
    counter = CounterId(namespace, key)
    rules = Rules(min_step=lower, max_step=upper, resettable=resettable, ttl_seconds=TTL_SECONDS)
    try:
        created, _ = await counter_service.create(counter, value, rules, admin_key=False)
    except CounterExistsError:
        return answer(request, 409, {"namespace": None, "key": None, "value": None}, counter)
    countapi_stats.keys_created += 1
    return answer(request, 200, {"namespace": namespace, "key": key, "value": created.count}, counter)


@get("/stats")
async def stats(request: Req, countapi_stats: NamedDependency[CountapiStats]) -> Response[bytes]:
    body = {
        "keys_created": countapi_stats.keys_created,
        "keys_updated": countapi_stats.keys_updated,
        "requests": countapi_stats.requests,
        "version": service_version(),
    }
    return answer(request, 200, body)


def _bad_request(request: Req, error: Exception) -> Response[bytes]:
    message = error.message if isinstance(error, BadRequestError) else MALFORMED
    return answer(request, 400, {"error": message})


def countapi_router() -> Router:
    """The `/countapi` router, with its own request counts."""
    counts = CountapiStats()

    def provide_stats() -> CountapiStats:
        return counts

    def count_request(_request: Req) -> None:
        counts.requests += 1

    return Router(
        "/countapi",
        route_handlers=[serving_head(h) for h in (hit, update, get_value, set_value, info, create, stats)],
        dependencies={"countapi_stats": Provide(provide_stats, sync_to_thread=False), **COUNTER},
        before_request=count_request,
        exception_handlers={BadRequestError: _bad_request, MalformedNameError: _bad_request},
        middleware=[countapi_cors()],
        include_in_schema=False,
        tags=["countapi"],
    )
