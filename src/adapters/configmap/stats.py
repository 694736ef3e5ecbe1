"""What the store did, counted: tests and benchmarks read it to see how a workload was served.

Counters only, as a scraper wants them: API writes per second over any interval is the rise of
`api_writes` divided by its length, and with a write budget it stays at most the budget times the
interval plus the burst. The `budget_*` counters tell how often the budget made a write wait, and
for how long in all, and how many batches it refused (503) because their turn would have come
after their time bound; `expired_in_queue` counts operations that waited their whole time bound
in the queue and were refused (503) before their turn; `turns_left` how often the writer left a
gap after its write for other writers at work on the same ConfigMap (contention).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ConfigMapStats:
    api_reads: int = 0
    api_writes: int = 0
    conflicts: int = 0
    throttled: int = 0
    transient_errors: int = 0
    batches: int = 0
    operations: int = 0
    timeouts_resolved: int = 0
    outcomes_unknown: int = 0
    budget_waits: int = 0
    budget_wait_seconds: float = 0.0
    budget_refused: int = 0
    expired_in_queue: int = 0
    turns_left: int = 0
