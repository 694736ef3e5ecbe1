"""Per-counter rules, set once when a counter is created explicitly, and the per-counter admin key.

One home for each rule: the step range (`Rules.check_step`), who may set or reset
(`Rules.resettable`, checked by the service), the expiry (`Rules.expires_at`, pushed forward by
every write; stores compare it with their own clock inside the write), and the admin key (only
its SHA-256 is kept, compared in constant time). Stores keep rules as the small JSON object of
`Rules.dump`, read back with `Rules.load`, so every store lays them out alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.errors import InvalidInputError, StepOutOfRangeError

# Step bounds stay within what a double holds exactly, so a store that compares in floating
# point (Redis's Lua) never misjudges an increment against a bound.
STEP_LIMIT = 2**53 - 1
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600  # ten years: longer is no expiry anyone means


@dataclass(frozen=True, slots=True)
class Rules:
    """What a counter created explicitly allows. The defaults allow everything, like a counter
    a hit created: any step, set and reset only by an admin, no expiry."""

    min_step: int | None = None  # <= 0
    max_step: int | None = None  # >= 0
    resettable: bool = False
    ttl_seconds: int | None = None

    def __post_init__(self) -> None:
        for name, bound, sign in (("min_step", self.min_step, -1), ("max_step", self.max_step, 1)):
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int) or abs(bound) > STEP_LIMIT:
                raise InvalidInputError(f"'{name}' must be an integer within ±{STEP_LIMIT}")
            if bound * sign < 0:
                raise InvalidInputError(f"'{name}' must be {'<=' if sign < 0 else '>='} 0")
        if not isinstance(self.resettable, bool):
            raise InvalidInputError("'resettable' must be a boolean")
        ttl = self.ttl_seconds
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_SECONDS
        ):
            raise InvalidInputError(f"'ttl_seconds' must be an integer from 1 to {MAX_TTL_SECONDS}")

    def allows(self, by: int) -> bool:
        low = self.min_step if self.min_step is not None else by
        high = self.max_step if self.max_step is not None else by
        return low <= by <= high

    def check_step(self, counter: object, by: int) -> None:
        """Raise StepOutOfRangeError when `by` is outside [min_step, max_step]."""
        if not self.allows(by):
            low = "-inf" if self.min_step is None else self.min_step
            high = "inf" if self.max_step is None else self.max_step
            raise StepOutOfRangeError(
                f"counter {str(counter)!r} takes steps from {low} to {high}, not {by}; nothing was changed"
            )

    def expires_at(self, now: datetime) -> datetime | None:
        """When a counter written at `now` expires, or None."""
        return None if self.ttl_seconds is None else now + timedelta(seconds=self.ttl_seconds)

    def expiry_epoch(self, now: float) -> float | None:
        return None if self.ttl_seconds is None else now + self.ttl_seconds

    def dump(self) -> str:
        """The stored form: compact JSON with only what differs from the defaults."""
        doc: dict[str, Any] = {}
        if self.min_step is not None:
            doc["min_step"] = self.min_step
        if self.max_step is not None:
            doc["max_step"] = self.max_step
        if self.resettable:
            doc["resettable"] = True
        if self.ttl_seconds is not None:
            doc["ttl_seconds"] = self.ttl_seconds
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def load(text: str | bytes) -> Rules:
        """Rules from `dump`'s form; ValueError when it is not that."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or not set(doc) <= {"min_step", "max_step", "resettable", "ttl_seconds"}:
            raise ValueError("not a rules object")
        try:
            return Rules(**doc)
        except InvalidInputError as error:
            raise ValueError(str(error)) from None


def expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def new_admin_key() -> tuple[str, str]:
    """A fresh per-counter admin key and the hash a store keeps of it."""
    key = secrets.token_urlsafe(32)
    return key, hash_admin_key(key)


def hash_admin_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def admin_key_matches(key: str | None, stored_hash: str | None) -> bool:
    """Whether `key` is the admin key whose hash is `stored_hash`, in constant time."""
    if not key or not stored_hash:
        return False
    return hmac.compare_digest(hash_admin_key(key).encode(), stored_hash.encode())
