"""The rate limits' windows in Redis, shared by every replica (imported only with the Redis store)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.exceptions import RedisError

from entrypoints.http.rate_limit import Window

logger = logging.getLogger("counter.http")

# Count the request and, on the first of a window, start the window: one atomic step, so that
# replicas never both take the last request of a window.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
_TIMEOUT_SECONDS = 1.0  # a limit must not hold a request long: past this it passes unlimited
_WARN_EVERY_SECONDS = 10.0


class RedisWindowStore(RedisStore):
    """Litestar's RedisStore with `hit`. Its keys are `{namespace}:{key}`, and the namespace is
    `{COUNTER_REDIS_PREFIX}rate-limit`, a name that none of the counter store's keys
    (`{prefix}c:...`, `{prefix}names`, `{prefix}idem:...`) can take.

    The hits of one event-loop tick, and those made while a pipeline is in flight, leave
    together in one pipeline (one round trip, one pooled connection), as the counter store's
    own commands do: one call of redis-py per request halved the service's throughput."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        super().__init__(redis, namespace=namespace, handle_client_shutdown=True)
        self._queue: list[tuple[str, int, asyncio.Future[Any]]] = []
        self._sending: asyncio.Task[None] | None = None
        self._warned_at = -math.inf

    @classmethod
    def on(cls, url: str, *, namespace: str) -> RedisWindowStore:
        """A store on its own client for `url`; nothing connects until the first request."""
        client = Redis.from_url(url, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS)
        return cls(client, namespace)

    async def hit(self, key: str, seconds: int) -> Window | None:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queue.append((self._make_key(key), seconds * 1000, reply))
        if self._sending is None:
            self._sending = loop.create_task(self._send())  # runs after this tick's other hits
        try:
            count, ttl_ms = await reply
        except (RedisError, OSError) as error:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning("rate limits not counted: Redis does not answer", extra={"error": str(error)})
            return None
        return Window(count=int(count), reset_in=max(1, math.ceil(int(ttl_ms) / 1000)))

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                pipeline = self._redis.pipeline(transaction=False)
                for key, window_ms, _ in batch:
                    pipeline.eval(_HIT, 1, key, window_ms)  # the body, not its SHA: never NOSCRIPT
                try:
                    replies: list[Any] = await pipeline.execute(raise_on_error=False)
                except (RedisError, OSError) as error:
                    replies = [error] * len(batch)
                for (_, _, future), answer in zip(batch, replies, strict=True):
                    if future.done():  # its request went away
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._sending = None
