"""Settling a write whose answer was lost, so that the caller hears what really happened.

A write whose answer never came (a timeout, a dropped connection, a 5xx) may or may not have been
applied. Every write also sets this writer's sequence number in `_writers`, so a re-read tells:
if `_writers` shows the write's number, it was applied and its outcomes are the answer; if the
resourceVersion moved on without it, it was not and never will be (its resourceVersion test can
no longer pass); if nothing changed, the next write, with the same precondition, fences it off.
After a 504 or no answer at all the write may still reach etcd later (the apiserver's timeout
filter answers while the storage write goes on), so only a moved-on version rules it out; after
any other answer a re-read that does not show it is proof enough.

At the retry bounds a batch with unconfirmed writes gets a few more tries of its own: reads, and
a fence write that carries no operation. Only when even those fail is the outcome reported as
unknown, with a message that asks for a retry with the same Idempotency-Key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

from adapters.configmap.api import ApiError, Kind
from adapters.configmap.batch import Outcomes
from adapters.configmap.codec import Snapshot
from adapters.configmap.retry import Bounds
from adapters.configmap.stats import ConfigMapStats
from domain.errors import OutcomeUnknownError, StoreUnavailableError

log = logging.getLogger(__name__)

SETTLE_TRIES: Final = 4


@dataclass(slots=True)
class Attempt:
    """A write whose outcome we have not seen: `outcomes` None marks a fence (no operations).

    `pending`: it may still reach the store later; after any other answer, a re-read that does
    not show it proves it was not applied.
    """

    base_version: str | None
    outcomes: Outcomes | None
    pending: bool


class Settlement:
    """One batch's unconfirmed writes, from the first lost answer until a read decides them."""

    def __init__(self, name: str, where: str, stats: ConfigMapStats, *, request_timeout: float) -> None:
        self._name = name  # for the logs
        self._where = where
        self._stats = stats
        self._request_timeout = request_timeout
        self._attempts: dict[int, Attempt] = {}
        self.settling = False  # past the bounds with unconfirmed writes: only fence, then fail

    def __bool__(self) -> bool:
        return bool(self._attempts)

    def lost(self, seq: int, base: Snapshot, outcomes: Outcomes, error: ApiError) -> None:
        """Write `seq`, based on `base`, got `error`: maybe applied, or still to be applied."""
        pending = error.kind is Kind.UNKNOWN or error.status == 504  # noqa: PLR2004
        self._attempts[seq] = Attempt(base.version, None if self.settling else outcomes, pending)

    def settle(self, snapshot: Snapshot, writer: str, bounds: Bounds) -> Outcomes | None:
        """The outcomes of the write that `snapshot` shows was applied, else None to go on."""
        if not self._attempts:
            return None
        applied = self._attempts.get(snapshot.writers.get(writer, -1))
        if applied is not None:
            self._stats.timeouts_resolved += 1
            log.info("configmap_unconfirmed_write_was_applied", extra={"configmap": self._name})
            if applied.outcomes is None:  # our fence: no earlier attempt can apply any more
                raise self.not_counted(bounds)
            return applied.outcomes
        # Not applied, and never will be when answered, or based on another version (versions
        # match only when equal, and every write changes the version).
        self._attempts = {
            s: a for s, a in self._attempts.items() if a.pending and a.base_version == snapshot.version
        }
        if self.settling and not self._attempts:
            raise self.not_counted(bounds)
        return None

    def check(self, bounds: Bounds) -> None:
        """At the bounds: raise, or first settle the writes whose outcome is unknown."""
        if not bounds.exhausted():
            return
        if self._attempts and not self.settling:
            # Reads and a fence write get a few more tries of their own to settle the outcome.
            self.settling = True
            bounds.max_tries = bounds.tries + SETTLE_TRIES
            bounds.deadline = time.monotonic() + 2 * self._request_timeout + 1.0
            return
        if self._attempts:
            self._stats.outcomes_unknown += 1
            log.warning("configmap_write_outcome_unknown", extra={"configmap": self._name})
            raise OutcomeUnknownError(
                f"the Kubernetes API did not confirm the write to {self._where}"
                f" ({bounds.last_error}); the outcome is unknown: retry with the same Idempotency-Key",
                retry_after=max(1, round(bounds.retry_after)),
            )
        raise self.not_counted(bounds)

    def failed(self, failure: StoreUnavailableError) -> StoreUnavailableError:
        """A fatal `failure`, told as unknown when an earlier write of the batch is unconfirmed."""
        if not self._attempts:
            return failure
        self._stats.outcomes_unknown += 1
        return OutcomeUnknownError(
            f"{failure}; an earlier write was not confirmed, so the outcome is unknown:"
            " retry with the same Idempotency-Key",
            retry_after=failure.retry_after,
        )

    def not_counted(self, bounds: Bounds) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"the Kubernetes API did not accept the write to {self._where}"
            f" after {bounds.tries} tries ({bounds.last_error or 'no answer'}); nothing was counted",
            retry_after=max(1, round(bounds.retry_after)),
        )
