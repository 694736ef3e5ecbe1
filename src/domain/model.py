"""Value objects of the counter domain."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from domain.errors import (
    CounterOverflowError,
    InvalidAmountError,
    InvalidCounterNameError,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DEFAULT_COUNTER = "default"

# Valid as a ConfigMap data key and a Redis key, and unambiguous in a URL path.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check_name(name: str) -> str:
    """Return the name when it is a valid counter name, else raise InvalidCounterNameError."""
    if _NAME_RE.fullmatch(name) is None:
        raise InvalidCounterNameError(
            f"counter name {name[:80]!r} is invalid: use 1-63 characters of A-Z a-z 0-9 _ . -,"
            " starting with a letter or a digit"
        )
    return name


def check_amount(by: int) -> int:
    """An increment is a non-zero signed 64-bit integer."""
    if isinstance(by, bool) or not isinstance(by, int):
        raise InvalidAmountError("'by' must be an integer")
    if by == 0:
        raise InvalidAmountError("'by' must not be 0")
    if not INT64_MIN <= by <= INT64_MAX:
        raise InvalidAmountError("'by' must be a signed 64-bit integer")
    return by


def check_value(count: int) -> int:
    """A value that a counter may be set to: any signed 64-bit integer."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidAmountError("'count' must be an integer")
    if not INT64_MIN <= count <= INT64_MAX:
        raise InvalidAmountError("'count' must be a signed 64-bit integer")
    return count


def add_checked(name: str, current: int, by: int) -> int:
    """current + by, or CounterOverflowError when the sum leaves the signed 64-bit range."""
    result = current + by
    if not INT64_MIN <= result <= INT64_MAX:
        raise CounterOverflowError(
            f"incrementing counter {name!r} ({current}) by {by} would leave the signed 64-bit range"
        )
    return result


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter as read from a store. Timestamps are None where the store does not keep them."""

    name: str
    count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Incremented:
    """The result of an increment. `replayed` is True when an earlier request with the same
    Idempotency-Key already applied it and this is its recorded result."""

    counter: Counter
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Replaced:
    """The result of setting a counter: its new state and the value it had before."""

    counter: Counter
    previous: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of counters sorted by name; `next_after` is the last name when more may follow."""

    counters: list[Counter]
    next_after: str | None
