"""Counters in Redis, shared by every replica that points at the same server.

Layout, under a configurable prefix (default ``counter:``):

- ``{prefix}c:{key}``: a counter of the namespace ``default``, a hash with ``count`` (signed
  64-bit, decimal), ``created_at`` and ``updated_at`` (server time, microseconds since the Unix
  epoch, from ``TIME``); ``{prefix}names``: a sorted set of the keys of that namespace, all
  scores 0, listed with ZRANGEBYLEX. These are the keys of the store before namespaces, so what
  it wrote is the namespace ``default`` as it is, with nothing to migrate;
- ``{prefix}ns:{namespace}:c:{key}`` and ``{prefix}ns:{namespace}:names``: the same for every
  other namespace. A name holds no ``:``, so the namespace ends at the first one: no two
  (namespace, key) pairs share a Redis key, and no counter shares one with ``names``, ``idem:``
  or the rate limits' ``rate-limit:``, whatever its name;
- a counter's hash also holds ``version`` (decimal, 1 once made, one more with every change
  written by a script; a counter written before versions has none and reads as version 1), and
  each write publishes its change on ``{prefix}changes:{namespace}/{key}`` (``keys`` builds every
  name; ``keys.changes_channel`` says what the messages hold);
- ``{prefix}idem:{record_key}``: what an increment with an Idempotency-Key recorded (the whole
  request fingerprint and the counter state it produced), expiring with PX after the key's TTL.
  `record_key` is `Idempotency.record_key`, the one name every store gives a key's record: 64
  hex characters, so any printable key makes a safe, fixed-length Redis key.

Every write is one Lua script, so it is atomic and either happens completely or not at all. One
server or a primary, not Redis Cluster (a script's keys would have to share a hash slot).

One concern a module: `protocol` packs commands and parses stored values, `scripts` holds the
Lua and how it is called, `connection` is the only user of redis-py internals, `batcher` turns
concurrent calls into pipelines, `fields` maps a counter's hash to a Counter and back,
`repository` maps the port onto all of them.
"""

from adapters.redis.keys import changes_channel
from adapters.redis.repository import RedisCounterRepository, open_redis_repository

__all__ = ["RedisCounterRepository", "changes_channel", "open_redis_repository"]
