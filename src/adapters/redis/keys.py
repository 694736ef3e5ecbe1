"""The names this store gives things in Redis, built in one place (the package docstring has the
layout): the keys of counters, of the index of each namespace's names and of Idempotency-Key
records, and the channel on which every change of a counter is published."""

from __future__ import annotations

from domain.idempotency import Idempotency
from domain.model import DEFAULT_NAMESPACE, CounterId


def counter_key(prefix: bytes, counter: CounterId) -> bytes:
    if counter.namespace == DEFAULT_NAMESPACE:
        return prefix + b"c:" + counter.key.encode()
    return b"%bns:%b:c:%b" % (prefix, counter.namespace.encode(), counter.key.encode())


def names_key(prefix: bytes, namespace: str) -> bytes:
    if namespace == DEFAULT_NAMESPACE:
        return prefix + b"names"
    return b"%bns:%b:names" % (prefix, namespace.encode())


def record_key(prefix: bytes, idempotency: Idempotency) -> bytes:
    return prefix + b"idem:" + idempotency.record_key.encode()


def changes_channel(prefix: str | bytes, counter: CounterId) -> bytes:
    """The Pub/Sub channel of `counter`'s changes: `{prefix}changes:{namespace}/{key}` (the
    namespace always named, `default` too; `/` is in no name, so no two counters share one).

    Every write script PUBLISHes on it in the same atomic step as the write, so messages come in
    the order of the changes, one per change, and only for changes that happened. The payload
    is ASCII:
    - `"{version} {count}"` after a create, an increment or a set: the counter's new version and
      value (a signed 64-bit decimal);
    - `"{version} deleted"` after a delete: the deleted counter's last version plus one (the
      delete is a change too); a counter made again afterwards starts again at version 1.
    A counter that expires (its ttl) publishes nothing: Redis removes it without a script.
    Nothing is kept for a subscriber that is not listening (Pub/Sub): after a reconnect, read
    the counter to catch up.
    """
    raw = prefix if isinstance(prefix, bytes) else prefix.encode()
    return b"%bchanges:%b/%b" % (raw, counter.namespace.encode(), counter.key.encode())
