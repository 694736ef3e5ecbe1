"""Everything one emulated server shares between its request threads and its controls."""

from __future__ import annotations

import threading
from typing import Any

from kube_emulator.faults import FaultInjector, Faults
from kube_emulator.late import LateWrites
from kube_emulator.stats import Stats
from kube_emulator.store import Store


class EmulatorState:
    """The store, the fault switch and the counters, plus the controls the tests and admin API use."""

    def __init__(self, write_delay: float = 0.0, token: str | None = None) -> None:
        self.stats = Stats()
        self.store = Store(self.stats, write_delay=write_delay)
        self.faults = FaultInjector()
        self.late = LateWrites(self.stats)  # writes answered 5xx and committed afterwards
        self.token = token
        # set when the server stops: wakes requests that sleep for an injected timeout
        self.stopping = threading.Event()

    @property
    def write_delay(self) -> float:
        return self.store.write_delay

    def set_write_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("write_delay must not be negative")
        self.store.write_delay = seconds

    def set_faults(self, faults: Faults) -> None:
        self.faults.set(faults)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Empty the store, zero the counters, switch faults off and drop held late writes
        (resourceVersions keep rising)."""
        self.faults.clear()
        self.late.drop()
        self.store.reset()
        self.stats.reset()

    def snapshot(self) -> dict[str, Any]:
        stats = self.stats.snapshot()
        items, revision = self.store.snapshot(None)
        stats["resource_version"] = str(revision)
        stats["configmaps"] = len(items)
        stats["write_delay"] = self.store.write_delay
        stats["late_writes_pending"] = self.late.pending()
        stats["active_faults"] = self.faults.faults.to_json() if self.faults.faults.active else None
        return stats
