"""Everything that can go wrong, in the words of the domain.

The HTTP layer maps each class to one status code in a single table; adapters translate their
technology's failures into these, so that no driver exception ever reaches a user.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service reports on purpose."""

    title = "Counter error"


class InvalidInputError(DomainError):
    """Input that breaks a rule; nothing was changed."""

    title = "Invalid input"


class InvalidCounterNameError(InvalidInputError):
    title = "Invalid counter name"


class InvalidAmountError(InvalidInputError):
    title = "Invalid amount"


class InvalidIdempotencyKeyError(InvalidInputError):
    title = "Invalid Idempotency-Key"


class StepOutOfRangeError(DomainError):
    """An increment outside the counter's [min_step, max_step]; nothing was changed."""

    title = "Step out of range"


class CounterExistsError(DomainError):
    """An explicit create of a counter that exists (and has not expired); nothing was changed."""

    title = "Counter exists"


class VersionMismatchError(DomainError):
    """A set or delete made on condition that the counter is at a version it is not at (an
    `If-Match` that no longer holds); nothing was changed. `current` is the version it is at."""

    title = "Version mismatch"

    def __init__(self, message: str, *, current: int) -> None:
        super().__init__(message)
        self.current = current


class ForbiddenError(DomainError):
    """The counter may not be set, reset or deleted without an admin token or its admin key."""

    title = "Forbidden"


class CounterOverflowError(DomainError):
    """The operation would leave the signed 64-bit range; nothing was changed."""

    title = "Counter overflow"


class IdempotencyKeyReusedError(DomainError):
    """The same Idempotency-Key came back with a different request; nothing was changed."""

    title = "Idempotency-Key reused with a different request"


class StoreUnavailableError(DomainError):
    """The store cannot be reached or did not answer in time; nothing was changed. The message is
    for the operator (hosts, ports, namespaces); clients get `client_detail`, fixed per class."""

    title = "Store unavailable"
    client_detail = "the store did not answer; nothing was changed: retry after Retry-After seconds"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknownError(StoreUnavailableError):
    """The store stopped answering after a write was sent: it may or may not have been applied.
    A client that retries with the same Idempotency-Key gets it applied exactly once."""

    title = "Outcome unknown: retry with the same Idempotency-Key"
    client_detail = (
        "the store stopped answering after the write was sent; it may have been counted:"
        " retry with the same Idempotency-Key after Retry-After seconds"
    )


class StoreFullError(StoreUnavailableError):
    """The store has no room for a new counter or a new Idempotency-Key record, and will have none
    until counters are deleted; counters that exist still count. Nothing was changed."""

    title = "Store full"
    client_detail = (
        "the store has no room for new counters or Idempotency-Keys; existing counters still count;"
        " nothing was changed"
    )


class IdempotencyTableFullError(StoreUnavailableError):
    """No room for a new Idempotency-Key record until the oldest live one expires (each key is
    kept for its whole time to live); increments without a key go on. Nothing was changed."""

    title = "Idempotency-Key table full"
    client_detail = (
        "the store keeps no more Idempotency-Keys until the oldest expire; nothing was changed:"
        " retry after Retry-After seconds, or without an Idempotency-Key"
    )


class StoreCorruptedError(DomainError):
    """Stored data that the service cannot read; it is reported and never overwritten.

    The message is for the operator (it may name keys, prefixes, hosts); `counter`, when the
    store knows it, is the name of the counter whose data it could not read, the one thing a
    client is told."""

    title = "Unreadable stored data"

    def __init__(self, message: str, *, counter: str | None = None) -> None:
        super().__init__(message)
        self.counter = counter
