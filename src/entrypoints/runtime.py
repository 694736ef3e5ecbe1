"""Process-level tuning for the server, applied once the store is open.

Why: under load, requests keep objects alive across awaits, so Python's cyclic garbage collector
runs often, and each full collection walks every long-lived object (the framework, the Kubernetes
client, the app's routes): about 50 ms on these machines (100 ms with the Kubernetes client),
which showed up as p99 latencies 10x the median and cost 10-20% of throughput in `make bench`.
Freezing what exists after start-up moves those objects out of the collector's way for good, and
a larger first-generation threshold makes young collections rarer. Reference counting still
frees almost everything at once; only cycles wait longer, the more so under load, when a
collection finds many requests in flight and moves them to an older generation. So the request
paths, the error paths included, make none: an exception kept where its own traceback can reach
it (a frame's local, an attribute of an object in that frame) ties it, the traceback and every
frame with its locals into one cycle per request. tests/integration/test_error_memory.py counts
what the collector finds after error answers, and a worker's RSS under a flood of them.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger("counter.runtime")

YOUNG_GENERATION_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
    logger.debug("garbage collector tuned", extra={"frozen_objects": gc.get_freeze_count()})
