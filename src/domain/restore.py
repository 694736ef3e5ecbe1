"""Restoring a counter with a given state: the one place that decides what an import does.

A store hands `decide_restore` the live counter it holds (None when it has none) inside the
same atomic step as the write that may follow, and writes `state_to_restore(...)` when told to.
So a counter is written only where it is absent (or, with `replace`, where it differs), and a
second import of the same line finds it "unchanged" and writes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from domain.model import Counter
from domain.rules import expired

# The coarsest clock any store keeps (the ConfigMap's timestamps are in milliseconds): two
# moments closer than this are one moment, so a count moved between stores compares as itself.
TIME_RESOLUTION = timedelta(milliseconds=1)


class RestoreOutcome(enum.Enum):
    WRITTEN = "written"  # it was absent and is now the given state
    REPLACED = "replaced"  # it differed and `replace` overwrote it
    UNCHANGED = "unchanged"  # it already has the given state: nothing written
    CONFLICT = "conflict"  # it has another state and was left alone
    EXPIRED = "expired"  # the given state has expired: nothing written

    @property
    def writes(self) -> bool:
        return self in (RestoreOutcome.WRITTEN, RestoreOutcome.REPLACED)


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did, and the counter as the store now holds it (the existing one when
    nothing was written; the given one when it expired)."""

    outcome: RestoreOutcome
    counter: Counter


def _same_time(wanted: datetime | None, stored: datetime | None) -> bool:
    if wanted is None:  # a time left out is not compared: the store chose it
        return True
    return stored is not None and abs(wanted - stored) < TIME_RESOLUTION


def same_state(stored: Counter, wanted: Counter) -> bool:
    """Whether `stored` already holds `wanted`: the same value, rules and admin key hash, and the
    same times where `wanted` gives them. The version is the store's count of changes, not part
    of the state."""
    return (
        stored.count == wanted.count
        and stored.rules == wanted.rules
        and stored.admin_key_hash == wanted.admin_key_hash
        and _same_time(wanted.created_at, stored.created_at)
        and _same_time(wanted.updated_at, stored.updated_at)
        and _same_time(wanted.expires_at, stored.expires_at)
    )


def decide_restore(
    existing: Counter | None, wanted: Counter, *, replace: bool, now: datetime
) -> RestoreOutcome:
    """What restoring `wanted` over `existing` (the live counter, None when there is none) does."""
    if expired(wanted.expires_at, now):
        return RestoreOutcome.EXPIRED
    if existing is None:
        return RestoreOutcome.WRITTEN
    if same_state(existing, wanted):
        return RestoreOutcome.UNCHANGED
    return RestoreOutcome.REPLACED if replace else RestoreOutcome.CONFLICT


def state_to_restore(wanted: Counter, existing: Counter | None, now: datetime) -> Counter:
    """The state a store writes: `wanted`, its missing times made `now` (and its expiry now +
    ttl_seconds when its rules have one), and a version that never goes back: the given one, or
    one more than the existing counter's when that is larger (1 for a counter new to the store)."""
    created_at = wanted.created_at or wanted.updated_at or now
    updated_at = wanted.updated_at or now
    expires_at = wanted.expires_at
    if expires_at is None and wanted.rules is not None:
        expires_at = wanted.rules.expires_at(now)
    version = max(wanted.version, 1 if existing is None else existing.version + 1)
    return replace(
        wanted, created_at=created_at, updated_at=updated_at, expires_at=expires_at, version=version
    )
