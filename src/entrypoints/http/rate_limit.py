"""Rate limits, off by default: per client address, and per counter for writes.

Litestar's own `RateLimitConfig` and `RateLimitMiddleware` (exclusions, the store from the app's
registry, the identifier, the `RateLimit-*` headers), with two changes in a subclass:

- The count is one atomic step in the store (`WindowStore.hit`). Litestar's middleware reads the
  history, checks it and writes it back under a lock of its process: two processes sharing a
  Redis store can both take the last request of a window, so a limit shared by replicas would
  let through more than it says. With Redis, the step is one Lua script (INCR, then the
  window's expiry on the first request), so every replica counts against the same number.
- A refusal is `429` with `Retry-After` too (Litestar 2 sends only `RateLimit-*`), raised
  into the app's exception handlers like every other error: a problem-details body.

A window starts with the first request of its key and lasts one period (fixed windows, as
Litestar counts them). The limits come right after the metrics and spans, so a refused request is
counted and costs nothing more; health checks and `/metrics` are never limited. With the Redis
store the windows live in that Redis under `{COUNTER_REDIS_PREFIX}rate-limit:` (see
rate_limit_redis.py); with every other store they live in each process's memory, so N workers
or replicas on SQLite or a ConfigMap let through up to N times the limit. When the Redis of the
limits does not answer, requests pass unlimited (the store's own errors answer for the counters),
and the log says so.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from litestar import Request
from litestar._asgi.utils import wrap_in_exception_handler
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import DURATION_VALUES, RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import StorageObject, Store
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain.model import DEFAULT_NAMESPACE
from entrypoints.http.head import without_body
from entrypoints.setting_formats import rate_parts
from entrypoints.settings import Settings

logger = logging.getLogger("counter.http")

STORE_NAME = "counter_rate_limits"  # in the app's store registry
# Probes and scrapes come from the platform, not from clients: never limited.
UNLIMITED_ROUTES = "^/(health/|metrics$|abacus/healthcheck$)"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_SWEEP_SECONDS = 60.0  # how often the memory store drops the windows that have ended


@dataclass(frozen=True, slots=True)
class Window:
    """One key's window after a request: how many it has counted, this one included, and in how
    many seconds it ends."""

    count: int
    reset_in: int


@runtime_checkable
class WindowStore(Protocol):
    async def hit(self, key: str, seconds: int) -> Window | None:
        """Count one request for `key` in its window of `seconds`, atomically; None when the
        store cannot count now (the request passes)."""
        ...


class MemoryWindowStore(MemoryStore):
    """Windows in this process's memory (Litestar's MemoryStore), swept once a minute so that
    the keys of clients gone away do not pile up."""

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.monotonic() + _SWEEP_SECONDS

    async def hit(self, key: str, seconds: int) -> Window | None:
        # Atomic without the store's lock: nothing is awaited between the read and the write,
        # so no other request of the event loop runs in between (the lock's checkpoint cost a
        # turn of the loop per request).
        stored = self._store.get(key)
        if stored is None or stored.expired:
            stored = StorageObject.new(data=b"1", expires_in=seconds)
        else:
            stored = StorageObject(data=b"%d" % (int(stored.data) + 1), expires_at=stored.expires_at)
        self._store[key] = stored
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + _SWEEP_SECONDS
            await self.delete_expired()
        return Window(count=int(stored.data), reset_in=max(1, stored.expires_in))


class CounterRateLimitMiddleware(RateLimitMiddleware):
    config: CounterRateLimitConfig

    def __init__(self, app: ASGIApp, config: CounterRateLimitConfig) -> None:
        super().__init__(app, config)
        self._seconds = DURATION_VALUES[self.unit]
        self._names = {
            key.lower().encode()
            for key in (
                config.rate_limit_policy_header_key,
                config.rate_limit_limit_header_key,
                config.rate_limit_remaining_header_key,
                config.rate_limit_reset_header_key,
            )
        }
        self._remaining_name = config.rate_limit_remaining_header_key.lower().encode()
        # Litestar builds this middleware once per app and route: the app's store is fixed.
        self._store: WindowStore | None = None
        self._store_checked = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        if not self._store_checked:
            registered = self.config.get_store_from_app(app)
            self._store = registered if isinstance(registered, WindowStore) else None
            self._store_checked = True
        store = self._store
        if store is None:  # a store of Litestar's own: its own counting
            await super().__call__(scope, receive, send)
            return
        request: Request[Any, Any, Any] = app.request_class(scope)
        if await self.should_check_request(request=request):
            window = await store.hit(self.cache_key_from_request(request), self._seconds)
            if window is not None:
                headers = self._headers(window)
                if window.count > self.max_requests:
                    await self._refuse(window, headers, scope, receive, send)
                    return
                send = self._send_with(send, headers, self.max_requests - window.count)
        await self.app(scope, receive, send)

    async def _refuse(
        self, window: Window, headers: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """429, answered by the app's exception handlers (a problem-details body)."""
        detail = self.config.refusal.format(limit=self.max_requests, period=self.unit)
        error = TooManyRequestsException(
            detail=f"{detail}; retry after {window.reset_in} s",
            headers={**headers, "Retry-After": str(window.reset_in)},
        )
        if scope.get("method") != "HEAD":
            raise error

        async def refuse(_scope: Scope, _receive: Receive, _send: Send) -> None:
            raise error

        # Answered here, with the answer's headers only, as the HEAD twins answer (head.py).
        await wrap_in_exception_handler(refuse)(scope, receive, without_body(send))  # type: ignore[arg-type]

    def _headers(self, window: Window) -> dict[str, str]:
        config = self.config
        return {
            config.rate_limit_policy_header_key: f"{self.max_requests}; w={self._seconds}",
            config.rate_limit_limit_header_key: str(self.max_requests),
            config.rate_limit_remaining_header_key: str(max(0, self.max_requests - window.count)),
            config.rate_limit_reset_header_key: str(window.reset_in),
        }

    def _send_with(self, send: Send, headers: dict[str, str], remaining: int) -> Send:
        """`send` that adds this limit's headers, unless another limit on the request (per
        client and per counter) has already put those of a nearer one."""
        encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        remaining_name, names = self._remaining_name, self._names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = list(message.get("headers", ()))
                other = next((value for name, value in present if name == remaining_name), None)
                if other is None:
                    message["headers"] = [*present, *encoded]
                elif not other.isdigit() or int(other) > remaining:
                    kept = [(name, value) for name, value in present if name not in names]
                    message["headers"] = [*kept, *encoded]
            await send(message)

        return send_with_headers


@dataclass
class CounterRateLimitConfig(RateLimitConfig):
    """Litestar's RateLimitConfig with the atomic count, `Retry-After`, and what a refusal says
    (`refusal`, with `{limit}` and `{period}`)."""

    refusal: str = "more than {limit} requests per {period}"
    middleware_class: type[RateLimitMiddleware] = field(default=CounterRateLimitMiddleware)
    store: str = STORE_NAME


def client_address(request: Request[Any, Any, Any], trusted_proxy_hops: int) -> str:
    """The client's address: the connection's peer, or behind `trusted_proxy_hops` proxies the
    address the outermost of them saw, the n-th from the right of X-Forwarded-For (each proxy
    appends the address it was connected from). Fewer addresses than proxies: the leftmost one.
    Anything but an IP address there: the peer's, so a made-up value cannot make a client new."""
    peer = request.scope.get("client")
    peer_host = peer[0] if peer else "unknown"
    if trusted_proxy_hops == 0:
        return peer_host
    forwarded = [
        item.strip()
        for name, value in request.scope["headers"]
        if name == b"x-forwarded-for"
        for item in value.decode("latin-1").split(",")
        if item.strip()
    ]
    if not forwarded:
        return peer_host
    chosen = forwarded[-min(trusted_proxy_hops, len(forwarded))]
    return _ip(chosen) or peer_host


def _ip(text: str) -> str | None:
    """`text` as an IP address, without the port some proxies add (`1.2.3.4:5678`, `[::1]:80`)."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


# In a handler's `opt`: the route writes whatever its method (the hit badge, a GET that counts).
WRITES_OPT = "writes"


def written_counter(request: Request[Any, Any, Any]) -> str | None:
    """The counter a request writes, if it is a write (a POST, PUT or DELETE, or a route marked
    with `opt={WRITES_OPT: True}`): `{namespace}/{key}` of its path, the `{name}` of a path in the
    default namespace, or the counter its route is fixed to (`/counter`: the `counter` in its
    controller's `opt`). The label of domain.model.CounterId: the key alone in the default
    namespace, so one counter has one limit on either route."""
    opt = request.scope["route_handler"].opt
    if request.scope["method"] not in WRITE_METHODS and not opt.get(WRITES_OPT):
        return None
    params = request.scope.get("path_params", {})
    name, namespace = params.get("key", params.get("name")), params.get("namespace", DEFAULT_NAMESPACE)
    if isinstance(name, str):
        return name if namespace == DEFAULT_NAMESPACE else f"{namespace}/{name}"
    counter = opt.get("counter")
    return counter if isinstance(counter, str) else None


async def is_counter_write(request: Request[Any, Any, Any]) -> bool:
    # A coroutine: Litestar runs a plain function given as `check_throttle_handler` in a thread.
    return written_counter(request) is not None


@dataclass(frozen=True)
class RateLimits:
    """What the app needs for the configured limits: its middleware and the store they count in."""

    middleware: list[DefineMiddleware]
    stores: dict[str, Store]


def rate_limits(settings: Settings) -> RateLimits:
    """The limits the settings ask for; none (and no store) by default."""
    configs = []
    per_client = rate_parts(settings.rate_limit_per_client)
    if per_client is not None:
        hops = settings.trusted_proxy_hops
        configs.append(
            _config(
                per_client,
                identify=lambda request: f"client:{client_address(request, hops)}",
                refusal="more than {limit} requests per {period} from this client",
            )
        )
    per_counter = rate_parts(settings.rate_limit_per_counter_writes)
    if per_counter is not None:
        configs.append(
            _config(
                per_counter,
                identify=lambda request: f"counter:{written_counter(request)}",
                refusal="more than {limit} writes per {period} to this counter",
                applies=is_counter_write,
            )
        )
    if not configs:
        return RateLimits(middleware=[], stores={})
    return RateLimits(
        middleware=[config.middleware for config in configs], stores={STORE_NAME: _store(settings)}
    )


def _config(
    limit: tuple[int, str],
    *,
    identify: Callable[[Request[Any, Any, Any]], str],
    refusal: str,
    applies: Callable[[Request[Any, Any, Any]], Awaitable[bool]] | None = None,
) -> CounterRateLimitConfig:
    count, period = limit
    return CounterRateLimitConfig(
        rate_limit=(period, count),  # type: ignore[arg-type]  # a period rate_parts accepted
        exclude=[UNLIMITED_ROUTES],
        identifier_for_request=identify,
        check_throttle_handler=applies,
        refusal=refusal,
    )


def _store(settings: Settings) -> Store:
    if settings.backend != "redis":
        return MemoryWindowStore()
    from entrypoints.http.rate_limit_redis import RedisWindowStore  # redis only where it is used

    return RedisWindowStore.on(settings.redis_url, namespace=f"{settings.redis_prefix}rate-limit")
