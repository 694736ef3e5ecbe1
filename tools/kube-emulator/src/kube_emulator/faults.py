"""Injected failures: the ways a real API server lets a client down, switchable at run time."""

from __future__ import annotations

import dataclasses
import enum
import random
import threading
from dataclasses import dataclass
from typing import Any, Final


class FaultKind(enum.StrEnum):
    CONFLICT = "conflict"
    TOO_MANY_REQUESTS = "too_many_requests"
    SERVER_ERROR = "server_error"
    TIMEOUT_BEFORE = "timeout_before"
    TIMEOUT_AFTER = "timeout_after"
    SERVER_ERROR_LATE = "server_error_late"


# How a write answered with `server_error_late` is applied afterwards.
LATE_APPLY_MODES: Final = ("next_write", "next_request", "delay")
LATE_STATUSES: Final = (500, 503, 504)


@dataclass(frozen=True, slots=True)
class Faults:
    """Shares (0..1) of eligible requests answered with each failure; they must add up to at most 1.

    - `conflict`: 409 `Conflict`, nothing applied (as if another writer won the race).
    - `too_many_requests`: 429 `TooManyRequests` with `Retry-After: retry_after`, nothing applied.
    - `server_error`: 500 `InternalError`, nothing applied.
    - `timeout_before`: the answer is held `timeout_seconds`, then a 504 `Timeout`; nothing applied.
    - `timeout_after`: the write IS applied, then the answer is held `timeout_seconds` (the client
      times out without knowing that its write landed).
    - `server_error_late`: answered at once with `late_status` (500 `etcdserver: request timed out`,
      503 `ServiceUnavailable` or 504 `Timeout`), and the write is committed AFTER the answer, as
      etcd commits a proposal the apiserver stopped waiting for: just before the next write request
      (`late_apply="next_write"`), before the next request of any kind (`"next_request"`), or
      `late_delay` seconds later (`"delay"`). Its preconditions (a JSON-patch `test` of the
      resourceVersion) are checked when it is committed, so it lands only on the version it was
      based on; otherwise it is dropped, as a failed etcd compare would drop it.
    `writes_only` limits the faults to create/update/patch/delete; `seed` makes the draws repeatable;
    `max_faults` stops injecting after that many faults (None: no limit), so that a test can fail
    exactly the first write.
    """

    conflict: float = 0.0
    too_many_requests: float = 0.0
    retry_after: int = 1
    server_error: float = 0.0
    timeout_before: float = 0.0
    timeout_after: float = 0.0
    timeout_seconds: float = 3.0
    server_error_late: float = 0.0
    late_status: int = 500
    late_apply: str = "next_write"
    late_delay: float = 0.1
    writes_only: bool = True
    seed: int | None = 0
    max_faults: int | None = None

    def __post_init__(self) -> None:
        shares = [getattr(self, kind.value) for kind in FaultKind]
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError(f"fault shares must be between 0 and 1: {self}")
        if sum(shares) > 1.0 + 1e-9:
            raise ValueError(f"fault shares add up to more than 1: {self}")
        if self.retry_after < 0 or self.timeout_seconds < 0 or self.late_delay < 0:
            raise ValueError("retry_after, timeout_seconds and late_delay must not be negative")
        if self.late_status not in LATE_STATUSES:
            raise ValueError(f"late_status must be one of {LATE_STATUSES}, not {self.late_status}")
        if self.late_apply not in LATE_APPLY_MODES:
            raise ValueError(f"late_apply must be one of {LATE_APPLY_MODES}, not {self.late_apply!r}")
        if self.max_faults is not None and self.max_faults < 0:
            raise ValueError("max_faults must not be negative")

    @property
    def active(self) -> bool:
        return any(getattr(self, kind.value) > 0.0 for kind in FaultKind)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> Faults:
        if not isinstance(raw, dict):
            raise TypeError("faults must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        return cls(**raw)


class FaultInjector:
    """Draws, for each eligible request, which fault (if any) it gets. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._active = False  # cached `faults.active`: read on every request
        self._random = random.Random(0)  # noqa: S311 - test fault draws, not cryptography
        self._injected = 0  # faults drawn since the last `set`, for `max_faults`

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._active = faults.active
            self._random = random.Random(faults.seed)  # noqa: S311 - repeatable on purpose
            self._injected = 0

    def clear(self) -> None:
        self.set(Faults())

    def draw(self, is_write: bool) -> tuple[FaultKind | None, Faults]:
        if not self._active:  # the fast path takes no lock
            return None, self._faults
        faults = self._faults
        if faults.writes_only and not is_write:
            return None, faults
        with self._lock:
            faults = self._faults
            if faults.max_faults is not None and self._injected >= faults.max_faults:
                return None, faults
            roll = self._random.random()
            threshold = 0.0
            for kind in FaultKind:
                threshold += getattr(faults, kind.value)
                if roll < threshold:
                    self._injected += 1
                    return kind, faults
        return None, faults
