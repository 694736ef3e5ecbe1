"""Settling a write whose answer was lost, so that the caller hears what really happened.

A write whose answer did not prove a refusal (a timeout, a reset connection, any 5xx) may or may
not have been applied, and may still be: etcd can commit a write after the apiserver answered
500 `etcdserver: request timed out`, 503 or 504 for it. Every write also sets this writer's
sequence number in `_writers`, so a re-read tells: if `_writers` shows the write's number, it was
applied and its outcomes are the answer; if the resourceVersion moved on without it, it was not
and never will be (its resourceVersion test can no longer pass); if nothing changed, it is still
pending, and the next write, with the same precondition, fences it off: either that write wins
and the pending one can no longer apply, or the pending one landed first and the next re-read
shows its number. A re-read that merely does not show it yet is never taken as "not applied".

At the retry bounds a batch with unconfirmed writes gets a few more tries of its own: reads, and
a fence write that carries no operation. Only when even those fail is the outcome reported as
unknown, with a message that asks for a retry with the same Idempotency-Key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

from adapters.configmap.api import ApiError
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

    It may land as long as the ConfigMap is still at `base_version`, the version it tests.
    """

    base_version: str | None
    outcomes: Outcomes | None


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
        """Write `seq`, based on `base`, got `error` (MAYBE_APPLIED): maybe applied, or still to be."""
        log.info("configmap_write_unconfirmed", extra={"configmap": self._name, "error": error.detail})
        self._attempts[seq] = Attempt(base.version, None if self.settling else outcomes)

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
        # Not applied, and never will be once the version moved on (versions match only when
        # equal, and every write changes the version); still pending while it did not.
        self._attempts = {s: a for s, a in self._attempts.items() if a.base_version == snapshot.version}
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
