"""Value objects of the counter domain."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from domain.errors import (
    CounterOverflowError,
    InvalidAmountError,
    InvalidCounterNameError,
    VersionMismatchError,
)
from domain.rules import Rules

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DEFAULT_NAMESPACE = "default"
DEFAULT_KEY = "default"  # the key of `/counter`, the original service's one counter
DEFAULT_COUNTER = DEFAULT_KEY

# A namespace or a key: what CountAPI and Abacus accept (3-64 characters, any of them first), or
# what this service accepted before namespaces (1-63, a letter or a digit first). Either way only
# A-Z a-z 0-9 _ . -, so every name is a valid ConfigMap data key, Redis key and URL path segment,
# and never holds the `/` that separates a namespace from a key in a label.
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NAME_MAX_LENGTH = 64
NAME_RULE = "3-64 characters of A-Z a-z 0-9 _ . -, or 1-63 of them starting with a letter or a digit"


def check_name(name: str, part: str = "key") -> str:
    """Return `name` when it is a valid namespace or key, else raise InvalidCounterNameError
    naming `part` ("namespace", "key")."""
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        shown = name[:80] if isinstance(name, str) else name
        raise InvalidCounterNameError(f"the counter {part} {shown!r} is invalid: use {NAME_RULE}")
    return name


@dataclass(frozen=True, slots=True, order=True)
class CounterId:
    """What names a counter: a namespace and a key in it, both checked when it is made, so an
    invalid identity cannot exist. Ordered by namespace, then key."""

    namespace: str
    key: str

    def __post_init__(self) -> None:
        check_name(self.namespace, "namespace")
        check_name(self.key, "key")

    def __str__(self) -> str:
        """The label of messages (and of the per-counter rate limit): the key alone in the
        default namespace, as before namespaces, else `namespace/key` (`/` is in no name)."""
        return self.key if self.namespace == DEFAULT_NAMESPACE else f"{self.namespace}/{self.key}"

    @staticmethod
    def default(key: str = DEFAULT_KEY) -> CounterId:
        return CounterId(DEFAULT_NAMESPACE, key)


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


def add_checked(counter: CounterId | str, current: int, by: int) -> int:
    """current + by, or CounterOverflowError when the sum leaves the signed 64-bit range."""
    result = current + by
    if not INT64_MIN <= result <= INT64_MAX:
        raise CounterOverflowError(
            f"incrementing counter {str(counter)!r} ({current}) by {by} would leave the signed 64-bit range"
        )
    return result


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter as read from a store. Timestamps are None where the store does not keep them.
    Whatever a counter comes to carry besides its value (rules, an expiry) is added here, as
    fields with defaults, so that stores that do not keep it yet still make Counters."""

    id: CounterId
    count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Only counters created explicitly have rules (None: a hit made it, anything goes), an
    # expiry (when rules have a ttl_seconds) and the hash of a per-counter admin key.
    rules: Rules | None = None
    expires_at: datetime | None = None
    admin_key_hash: str | None = None
    # Grows by at least one with every change of the counter, atomically with the change, in
    # every store: 0 for a counter that does not exist, 1 once it is made. It is the counter's
    # ETag, the `If-Match` of a compare-and-set and the event id of live updates.
    version: int = 0

    @property
    def exists(self) -> bool:
        # Every store answers a missing counter as 0 without timestamps.
        return self.created_at is not None

    @property
    def namespace(self) -> str:
        return self.id.namespace

    @property
    def key(self) -> str:
        return self.id.key


def check_version(
    counter: CounterId,
    expected: int | None,
    current: int,
    expected_created_at: datetime | None = None,
    created_at: datetime | None = None,
) -> None:
    """Raise VersionMismatchError unless `expected` is None (no condition) or `current`, and
    `expected_created_at` is None or the counter's `created_at`: the moment that tells one life
    of a counter from the next, as versions start again at 1 once it is deleted. Stores call it
    in the same atomic step as the write it guards; 0 expects the counter not to exist."""
    if expected is not None and expected != current:
        raise VersionMismatchError(
            f"counter {str(counter)!r} is at version {current}, not {expected}; nothing was changed",
            current=current,
        )
    if expected_created_at is not None and expected_created_at != created_at:
        raise VersionMismatchError(
            f"counter {str(counter)!r} is no longer the one made at {expected_created_at.isoformat()}"
            " (it was deleted, or made again); nothing was changed",
            current=current,
        )


@dataclass(frozen=True, slots=True)
class VersionMatch:
    """The versions a change is conditional on (an `If-Match`): any of `versions`, or, when it is
    None (`*`), any version of a counter that exists."""

    versions: frozenset[int] | None = None

    def matches(self, version: int) -> bool:
        return version > 0 if self.versions is None else version in self.versions


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
    """One page of the counters of one namespace, sorted by key; `next_after` is the last key
    when more may follow."""

    counters: list[Counter]
    next_after: str | None
