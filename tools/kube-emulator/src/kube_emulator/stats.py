"""Counters that tests and benchmarks read to see what the clients really did."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counts of requests by verb, applied writes, conflicts and injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._responses: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()
        self._writes = 0
        self._noop_updates = 0
        self._conflicts = 0
        self._already_exists = 0
        self._too_long = 0
        self._late_applied = 0
        self._late_dropped = 0
        self._largest_object = 0
        self._largest_data = 0

    def count_request(self, verb: str) -> None:
        with self._lock:
            self._requests[verb] += 1

    def count_response(self, code: int, reason: str) -> None:
        with self._lock:
            self._responses[code] += 1
            if code == 409:  # noqa: PLR2004 - HTTP 409
                if reason == "Conflict":
                    self._conflicts += 1
                elif reason == "AlreadyExists":
                    self._already_exists += 1

    def count_too_long(self) -> None:
        """A write refused because the object would pass the 1 MiB limit (422 `Too long`)."""
        with self._lock:
            self._too_long += 1

    def count_write(self, object_bytes: int = 0, data_bytes: int = 0) -> None:
        """An applied write; the sizes of the object it stored (encoded, and its data as the
        1 MiB limit counts it), so that a test can tell the largest object ever stored."""
        with self._lock:
            self._writes += 1
            self._largest_object = max(self._largest_object, object_bytes)
            self._largest_data = max(self._largest_data, data_bytes)

    def count_late_write(self, *, applied: bool) -> None:
        with self._lock:
            if applied:
                self._late_applied += 1
            else:
                self._late_dropped += 1

    def count_noop_update(self) -> None:
        with self._lock:
            self._noop_updates += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._responses.clear()
            self._faults.clear()
            self._writes = self._noop_updates = self._conflicts = self._already_exists = 0
            self._too_long = self._late_applied = self._late_dropped = 0
            self._largest_object = self._largest_data = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "requests_total": sum(self._requests.values()),
                "responses": {str(code): count for code, count in sorted(self._responses.items())},
                "writes": self._writes,
                "noop_updates": self._noop_updates,
                "conflicts": self._conflicts,
                "already_exists": self._already_exists,
                "faults": dict(self._faults),
                "too_long": self._too_long,
                "late_writes_applied": self._late_applied,
                "late_writes_dropped": self._late_dropped,
                "largest_object_bytes": self._largest_object,
                "largest_data_bytes": self._largest_data,
            }
