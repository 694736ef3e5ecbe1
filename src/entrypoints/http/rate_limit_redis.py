"""The rate limits' windows in Redis, shared by every replica (imported only with the Redis store)."""

from __future__ import annotations

import logging
import math
import time

from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.exceptions import RedisError

from entrypoints.http.rate_limit import Window

logger = logging.getLogger("counter.http")

# Count the request and, on the first of a window, start the window: one atomic step, so that
# replicas never both take the last request of a window.
_HIT = b"""
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
    (`{prefix}c:...`, `{prefix}names`, `{prefix}idem:...`) can take."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        super().__init__(redis, namespace=namespace, handle_client_shutdown=True)
        self._hit = redis.register_script(_HIT)
        self._warned_at = -math.inf

    @classmethod
    def on(cls, url: str, *, namespace: str) -> RedisWindowStore:
        """A store on its own client for `url`; nothing connects until the first request."""
        client = Redis.from_url(url, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS)
        return cls(client, namespace)

    async def hit(self, key: str, seconds: int) -> Window | None:
        try:
            count, ttl_ms = await self._hit(keys=[self._make_key(key)], args=[seconds * 1000])
        except (RedisError, OSError) as error:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning("rate limits not counted: Redis does not answer", extra={"error": str(error)})
            return None
        return Window(count=int(count), reset_in=max(1, math.ceil(int(ttl_ms) / 1000)))
