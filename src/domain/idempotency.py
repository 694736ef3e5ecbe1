"""Idempotency-Key: the one place that decides replay, refusal and expiry.

A store keeps one record per key, atomically with the increment it belongs to, and hands what it
holds for a key to `decide` inside that same atomic step. The store chooses how to lay the record
out, but names it by `Idempotency.record_key` (one encoding for every store) and keeps the whole
fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from domain.errors import IdempotencyKeyReusedError, InvalidIdempotencyKeyError
from domain.model import DEFAULT_NAMESPACE, Counter, CounterId, Incremented

_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
_OWS = " \t"  # optional whitespace around an HTTP field value (RFC 9110, section 5.6.3)
REUSED_MESSAGE = "this Idempotency-Key was first used with a different request"


@dataclass(frozen=True, slots=True)
class Idempotency:
    """What a store needs to apply an increment at most once per key.

    `fingerprint` identifies the request the key was first used with (a SHA-256 in hex); a
    repeat with the same key and another fingerprint is refused.
    """

    key: str
    fingerprint: str
    ttl_seconds: float

    @staticmethod
    def for_increment(key: str, counter: CounterId, by: int, ttl_seconds: float) -> Idempotency:
        """`key` as the client sent it. Leading and trailing spaces and tabs are not part of it:
        an HTTP field value excludes them (RFC 9110, section 5.5) and servers may or may not strip
        them before the app sees the value, so `abc `, ` abc` and `abc` are one key, here, for
        every store and both ways of answering. What remains must be 1-255 printable ASCII
        characters.

        The fingerprint binds the namespace, the key and the amount. In the default namespace it
        is what it was before namespaces (no namespace line), so a client retrying across the
        upgrade still gets its first answer; elsewhere it has one line more, so no two requests
        share one (names hold no newline)."""
        key = key.strip(_OWS)
        if _KEY_RE.fullmatch(key) is None:
            raise InvalidIdempotencyKeyError("Idempotency-Key must be 1-255 printable ASCII characters")
        if counter.namespace == DEFAULT_NAMESPACE:
            request = f"increment\n{counter.key}\n{by}"
        else:
            request = f"increment\n{counter.namespace}\n{counter.key}\n{by}"
        digest = hashlib.sha256(request.encode()).hexdigest()
        return Idempotency(key=key, fingerprint=digest, ttl_seconds=ttl_seconds)

    @property
    def record_key(self) -> str:
        """The name of this key's record in every store: 64 hex characters, whatever the key
        holds, so it is a safe SQLite key, Redis key and JSON object key alike."""
        return hashlib.sha256(self.key.encode()).hexdigest()

    def record(self, counter: Counter, now: float) -> IdempotencyRecord:
        """The record to keep with the increment that produced `counter` at `now` (Unix seconds)."""
        return IdempotencyRecord(self.fingerprint, counter, now + self.ttl_seconds)


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What the first request with a key produced, kept until `expires_at` (Unix seconds)."""

    fingerprint: str
    counter: Counter
    expires_at: float

    def expired(self, now: float) -> bool:
        return self.expires_at <= now


def decide(idempotency: Idempotency, record: IdempotencyRecord | None, now: float) -> Incremented | None:
    """What a keyed increment does, given the record the store holds for its key.

    None: no live record, apply the increment and keep `idempotency.record(...)` with it.
    An `Incremented` with `replayed=True`: the key's first request already applied it; answer
    that and change nothing. Raises IdempotencyKeyReusedError when the key came with another
    request; nothing may change then either.
    """
    if record is None or record.expired(now):
        return None
    if record.fingerprint != idempotency.fingerprint:
        raise IdempotencyKeyReusedError(REUSED_MESSAGE)
    return Incremented(counter=record.counter, replayed=True)
