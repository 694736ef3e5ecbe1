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


class CounterOverflowError(DomainError):
    """The operation would leave the signed 64-bit range; nothing was changed."""

    title = "Counter overflow"


class IdempotencyKeyReusedError(DomainError):
    """The same Idempotency-Key came back with a different request; nothing was changed."""

    title = "Idempotency-Key reused with a different request"


class StoreUnavailableError(DomainError):
    """The store cannot be reached or did not answer in time; nothing was changed."""

    title = "Store unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknownError(StoreUnavailableError):
    """The store stopped answering after a write was sent: it may or may not have been applied.
    A client that retries with the same Idempotency-Key gets it applied exactly once."""

    title = "Outcome unknown: retry with the same Idempotency-Key"


class StoreCorruptedError(DomainError):
    """Stored data that the service cannot read; it is reported and never overwritten."""

    title = "Unreadable stored data"
