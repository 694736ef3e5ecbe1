"""The public routes of `/abacus`: Abacus 1.6.0's `hit`, `get`, `create`, `info`, `stats` and
`healthcheck` on CounterService.

Counters made here (by `create`, or by the first `hit` of a key) expire 4032 hours (168 days)
after their last write or read, as Abacus's do; `create` gives them an admin key, a `hit` none.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.params import QueryParameter
from litestar.response import Redirect

from domain.model import Counter, CounterId
from domain.rules import Rules
from domain.services import CounterService
from entrypoints.http.abacus.answers import (
    API_VERSION,
    AbacusError,
    answer,
    go_duration,
    go_float,
    value_answer,
)
from entrypoints.http.abacus.docs import (
    INTEGER_SCHEMA,
    JSON,
    READ_ERRORS,
    STEP_ERRORS,
    TAG,
    WRITE_ERRORS,
    CallbackParam,
    JsonpOperation,
    error,
    operation_id,
)
from entrypoints.http.abacus.names import COUNTER, COUNTER_IN_DEFAULT, full_key
from entrypoints.http.abacus.schemas import CreatedBody, HealthBody, InfoBody, StatsBody, ValueBody
from entrypoints.http.abacus.stats import AbacusStats
from entrypoints.http.compat.numbers import int64
from entrypoints.http.controllers import STORE_ERRORS
from entrypoints.http.openapi import DocumentedOperation
from entrypoints.http.rate_limit import WRITES_OPT

TTL_SECONDS = 4032 * 3600  # Abacus's BaseTTLPeriod
ABACUS_RULES = Rules(ttl_seconds=TTL_SECONDS)
DOCS_PATH = "/schema/swagger"  # where Abacus's redirects to its docs lead here
RANDOM_NAME_LENGTH = 16
UNCOUNTED_OPT = "abacus_uncounted"  # in a handler's `opt`: not in /abacus/stats
_RANDOM_ALPHABET = string.ascii_letters + string.digits + "-_"
_NS = 1_000_000_000
Req = Request[Any, Any, Any]

InitializerParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        description="The counter's first value, a signed 64-bit integer (default 0).",
        schema_extra=INTEGER_SCHEMA,
    ),
]
_DOC: dict[str, Any] = {"tags": [TAG], "media_type": JSON}


def _random_name() -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(RANDOM_NAME_LENGTH))


@get(
    "/hit/{namespace:str}/{key:str}",
    operation_id="abacusHit",
    operation_class=JsonpOperation,
    summary="Abacus: count a hit",
    description="**This GET writes**: adds 1 (a missing key is made first, with no admin key) and"
    ' answers `{"value": N}`.',
    responses={**WRITE_ERRORS, **STEP_ERRORS},
    opt={WRITES_OPT: True},  # a write for the per-counter rate limit, though a GET
    dependencies=COUNTER,
    **_DOC,
)
async def hit(
    counter_service: NamedDependency[CounterService],
    abacus_stats: NamedDependency[AbacusStats],
    counter: NamedDependency[CounterId],
    callback: CallbackParam = None,
) -> Response[ValueBody]:
    answer_value = value_answer(callback)  # a malformed callback counts nothing
    return answer_value((await count_hit(counter_service, abacus_stats, counter)).count)


async def count_hit(service: CounterService, stats: AbacusStats, counter: CounterId) -> Counter:
    """Add 1, making a missing counter first (no admin key): the counter's new state."""
    if await service.ensure(counter, ABACUS_RULES):
        stats.keys_created += 1
    return (await service.increment(counter)).counter


@get(
    "/get/{namespace:str}/{key:str}",
    operation_id="abacusGet",
    operation_class=JsonpOperation,
    summary="Abacus: read a counter",
    description="The value; it pushes the counter's expiry forward, as Abacus does.",
    responses={**READ_ERRORS, 404: error("The key does not exist.")},
    dependencies=COUNTER,
    **_DOC,
)
async def get_value(
    counter_service: NamedDependency[CounterService],
    counter: NamedDependency[CounterId],
    callback: CallbackParam = None,
) -> Response[ValueBody]:
    answer_value = value_answer(callback)
    return answer_value((await existing(counter_service, counter, touch=True)).count)


async def existing(service: CounterService, counter: CounterId, *, touch: bool = False) -> Counter:
    """The counter, or 404 `Key not found`."""
    current = await service.get(counter, touch)
    if not current.exists:
        raise AbacusError(404, "Key not found")
    return current


async def _create(
    service: CounterService, stats: AbacusStats, counter: CounterId, initializer: str | None
) -> Response[CreatedBody]:
    value = 0 if initializer is None else int64(initializer)
    if value is None:
        raise AbacusError(400, "initializer must be a number")
    created, admin_key = await service.create(counter, value, ABACUS_RULES)
    stats.keys_created += 1
    return answer(
        201,
        {"admin_key": admin_key, "key": counter.key, "namespace": counter.namespace, "value": created.count},
    )


_CREATE: dict[str, Any] = {
    **_DOC,
    "http_method": [HttpMethod.GET, HttpMethod.POST],
    "status_code": 201,
    "operation_class": DocumentedOperation,
    "opt": {WRITES_OPT: True},
    "responses": {
        **WRITE_ERRORS,
        400: error("An invalid name, or an `initializer` that is not a signed 64-bit integer."),
        409: error("The key exists."),
    },
}


@route(
    ["/create/{namespace:str}/{key:str}", "/create/{key:str}"],
    operation_id=operation_id("Create"),
    summary="Abacus: create a counter with an admin key",
    description="Makes the counter at `initializer` and answers, this once, its `admin_key`: the"
    " token of `set`, `reset`, `update` and `delete`.",
    dependencies=COUNTER_IN_DEFAULT,
    **_CREATE,
)
async def create(
    counter_service: NamedDependency[CounterService],
    abacus_stats: NamedDependency[AbacusStats],
    counter: NamedDependency[CounterId],
    initializer: InitializerParam = None,
) -> Response[CreatedBody]:
    return await _create(counter_service, abacus_stats, counter, initializer)


@route(
    "/create",
    operation_id=operation_id("CreateRandom"),
    summary="Abacus: create a counter with random names",
    description="As `create`, with a random 16-character namespace and key.",
    **_CREATE,
)
async def create_random(
    counter_service: NamedDependency[CounterService],
    abacus_stats: NamedDependency[AbacusStats],
    initializer: InitializerParam = None,
) -> Response[CreatedBody]:
    counter = CounterId(_random_name(), _random_name())
    return await _create(counter_service, abacus_stats, counter, initializer)


def _expires_in(current: Counter, now: datetime) -> tuple[float, int]:
    # Abacus reads Redis's TTL: whole seconds, -2 for a missing key, -1 for one that never expires
    # (then taken as nanoseconds, go-redis's reading of those two answers).
    if not current.exists:
        return -2e-9, -2
    if current.expires_at is None:
        return -1e-9, -1
    seconds = max(0, round((current.expires_at - now).total_seconds()))
    return float(seconds), seconds * _NS


@get(
    ["/info/{namespace:str}/{key:str}", "/info/{key:str}"],
    operation_id=operation_id("Info"),
    operation_class=DocumentedOperation,
    summary="Abacus: what is known of a counter",
    description="Answers 200 for a missing key too (`exists` false, `value` -1).",
    responses=READ_ERRORS,
    dependencies=COUNTER_IN_DEFAULT,
    **_DOC,
)
async def info(
    counter_service: NamedDependency[CounterService], counter: NamedDependency[CounterId]
) -> Response[InfoBody]:
    current = await counter_service.get(counter)
    expires_in, expires_ns = _expires_in(current, datetime.now(UTC))
    body = {
        "exists": current.exists,
        "expires_in": go_float(expires_in),
        "expires_str": go_duration(expires_ns),
        "full_key": full_key(counter),
        "is_genuine": current.admin_key_hash is None,
        "value": current.count if current.exists else -1,
    }
    return answer(200, body)


@get(
    "/stats",
    operation_id="abacusStats",
    operation_class=DocumentedOperation,
    summary="Abacus: request counts of this server process",
    description="Counted by this server process since it started, this request not included. The"
    " store's own figures (`db_*`, `*__since_restart`) are not known here: empty strings.",
    responses={429: STORE_ERRORS[429]},
    **_DOC,
)
async def stats(abacus_stats: NamedDependency[AbacusStats]) -> Response[StatsBody]:
    body = {
        "commands": dict(sorted(abacus_stats.commands.items())),
        "db_uptime": "",
        "db_version": "",
        "expired_keys__since_restart": "",
        "key_misses__since_restart": "",
        "shard": "",
        "total_keys": abacus_stats.keys_created,
        "uptime": go_duration(abacus_stats.uptime_ns()),
        "version": API_VERSION,
    }
    abacus_stats.count("stats")  # after its answer was read: a request is not in its own count
    return answer(200, body)


@get(
    "/healthcheck",
    operation_id="abacusHealthcheck",
    operation_class=DocumentedOperation,
    summary="Abacus: liveness",
    description="`ok` and how long this server process has run; no I/O (`/health/ready` checks the store).",
    responses={},
    **_DOC,
)
async def healthcheck(abacus_stats: NamedDependency[AbacusStats]) -> Response[HealthBody]:
    return answer(200, {"status": "ok", "uptime": go_duration(abacus_stats.uptime_ns())})


@get(
    ["/docs", "/hit/{key:str}", "/get/{key:str}"],
    include_in_schema=False,
    status_code=308,
    opt={UNCOUNTED_OPT: True},
)
async def to_docs() -> Redirect:
    """Abacus 1.6.0 has no `/hit/{key}` or `/get/{key}` (without a namespace): like every path it
    does not serve, they lead to its docs with a 308; here, to this server's."""
    return Redirect(path=DOCS_PATH, status_code=308)


PUBLIC_ROUTES = [hit, get_value, create, create_random, info, stats, healthcheck, to_docs]
