"""Writes committed after their answer: what etcd does with a proposal the apiserver gave up on.

A real kube-apiserver answers 500 (`etcdserver: request timed out`), 503 or 504 when etcd does not
confirm a write in time, and etcd may still commit it afterwards. Such a write is held here and
run later, against the state of that moment: a JSON patch that tests the resourceVersion it was
based on then lands only if nothing was written meanwhile, as the etcd transaction's compare
would decide; otherwise it is dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

from kube_emulator.stats import Stats
from kube_emulator.statuses import ApiError

logger = logging.getLogger(__name__)

Write = Callable[[], object]


class LateWrites:
    """Writes waiting for their trigger: the next write, the next request, or a timer."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._next_write: list[Write] = []
        self._next_request: list[Write] = []
        self._timers: dict[int, threading.Timer] = {}
        self._tickets = itertools.count()

    def hold(self, write: Write, mode: str, delay: float) -> None:
        """Commit `write` later: before the next write (`next_write`), before the next request of
        any kind (`next_request`), or `delay` seconds from now (`delay`)."""
        with self._lock:
            if mode == "next_write":
                self._next_write.append(write)
            elif mode == "next_request":
                self._next_request.append(write)
            else:
                ticket = next(self._tickets)
                timer = threading.Timer(delay, self._fire, args=(ticket, write))
                timer.daemon = True
                timer.name = "kube-emulator-late-write"
                self._timers[ticket] = timer
                timer.start()

    def before_request(self, *, is_write: bool) -> None:
        """Commit what waits for this request, in the order the writes were answered."""
        with self._lock:
            due = self._next_request
            self._next_request = []
            if is_write:
                due += self._next_write
                self._next_write = []
        for write in due:
            self._commit(write)

    def pending(self) -> int:
        with self._lock:
            return len(self._next_write) + len(self._next_request) + len(self._timers)

    def drop(self) -> None:
        """Forget every held write (a reset, or the server stopping)."""
        with self._lock:
            self._next_write.clear()
            self._next_request.clear()
            timers, self._timers = self._timers, {}
        for timer in timers.values():
            timer.cancel()

    def _fire(self, ticket: int, write: Write) -> None:
        with self._lock:
            if self._timers.pop(ticket, None) is None:
                return  # dropped meanwhile
        self._commit(write)

    def _commit(self, write: Write) -> None:
        try:
            write()
        except ApiError as error:  # its precondition failed: etcd's compare drops it
            self._stats.count_late_write(applied=False)
            logger.debug("a late write was dropped: %s", error)
        except Exception:  # the emulator's own bug: log it, never kill the request
            self._stats.count_late_write(applied=False)
            logger.exception("a late write failed")
        else:
            self._stats.count_late_write(applied=True)
