"""What the store did, counted: tests and benchmarks read it to see how a workload was served."""

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
