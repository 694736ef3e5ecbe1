"""The metrics directory of a server with several workers.

prometheus-client's multiprocess mode keeps each worker's values in files of one directory,
named by PROMETHEUS_MULTIPROC_DIR, and a scrape sums them. Each `counter serve --workers N`
gets a fresh directory of its own, made before the workers start (they inherit the variable:
uvicorn spawns them), so that no value of an earlier server is summed in, and removed when the
server stops. A worker that dies is replaced by uvicorn; its counters stay (the totals must not
drop), and its files of "live" gauges are removed (`mark_process_dead`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("counter.metrics")

# Read by prometheus-client once, when it is first imported: this module does not import it, so
# that `counter serve` sets the variable before anything does (a worker, or the one server).
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """With more than one worker: a fresh directory in PROMETHEUS_MULTIPROC_DIR while the block
    runs, removed after. One worker keeps its metrics in memory (cheaper) and needs none: None.
    The variable is as it was before once the block ends."""
    previous = os.environ.get(MULTIPROC_DIR_VARIABLE)
    path = None
    if workers > 1:
        # Under the directory the variable names, if any (an emptyDir, a tmpfs), else the system's.
        if previous:
            Path(previous).mkdir(parents=True, exist_ok=True)
        path = tempfile.mkdtemp(prefix="counter-metrics-", dir=previous or None)
        os.environ[MULTIPROC_DIR_VARIABLE] = path
        logger.debug("metrics directory made", extra={"path": path})
    else:
        os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
        else:
            os.environ[MULTIPROC_DIR_VARIABLE] = previous
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Bookkeeping for a worker that is gone (died, or retired by the supervisor)."""
    if not os.environ.get(MULTIPROC_DIR_VARIABLE):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    logger.debug("metrics of a worker that exited marked dead", extra={"pid": pid})
