"""What `/abacus/stats` and `/abacus/healthcheck` report: counted by this server process since it
started (each worker and replica counts its own), as Abacus's own counts before they reach its
Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

COUNTED = ("create", "get", "hit")


@dataclass(slots=True)
class AbacusStats:
    started_ns: int = field(default_factory=time.monotonic_ns)
    commands: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*COUNTED, "total"), 0))
    keys_created: int = 0  # by `create`, and by the first hit of a key

    def count(self, operation: str) -> None:
        """One request to `/abacus/<operation>/...` (once, unlike Abacus 1.6.0's twice)."""
        self.commands["total"] += 1
        if operation in COUNTED:
            self.commands[operation] += 1

    def uptime_ns(self) -> int:
        return time.monotonic_ns() - self.started_ns


def operation_of(path: str) -> str:
    """`hit` of `/abacus/hit/ns/key`: the segment after the router's prefix."""
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 else ""  # noqa: PLR2004
