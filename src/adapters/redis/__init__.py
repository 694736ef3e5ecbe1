"""Counters in Redis, shared by every replica that points at the same server.

Layout, under a configurable prefix (default ``counter:``):

- ``{prefix}c:{name}``: a hash with ``count`` (signed 64-bit, decimal), ``created_at`` and
  ``updated_at`` (server time, microseconds since the Unix epoch, from ``TIME``);
- ``{prefix}names``: a sorted set of every counter name, all scores 0, listed with ZRANGEBYLEX;
- ``{prefix}idem:{record_key}``: what an increment with an Idempotency-Key recorded (the whole
  request fingerprint and the counter state it produced), expiring with PX after the key's TTL.
  `record_key` is `Idempotency.record_key`, the one name every store gives a key's record: 64
  hex characters, so any printable key makes a safe, fixed-length Redis key.

Every write is one Lua script, so it is atomic and either happens completely or not at all. One
server or a primary, not Redis Cluster (a script's keys would have to share a hash slot).

One concern a module: `protocol` packs commands and parses stored values, `scripts` holds the
Lua and how it is called, `connection` is the only user of redis-py internals, `batcher` turns
concurrent calls into pipelines, `repository` maps the port onto all of them.
"""

from adapters.redis.repository import RedisCounterRepository, open_redis_repository

__all__ = ["RedisCounterRepository", "open_redis_repository"]
