"""One thread, one sqlite3 connection, one queue: how the SQLite store runs its transactions.

The store runs two of these on one file: a writer, whose batches start with `BEGIN IMMEDIATE`
(group commit: up to `max_batch` queued jobs in one transaction), and a reader, whose batches
are plain read transactions. In WAL mode a reader never waits for a writer, this process's or
another's, so reads go on while the writer waits for the write lock.

Every job carries a deadline: the longest its caller waits for the file's lock. A batch waits
for the lock (SQLite's busy timeout) only until its oldest job's deadline, then fails with
StoreUnavailableError, nothing of it written; a job whose deadline passed while it queued gets
one try without waiting. So no request waits much longer than the lock timeout, however long
another process holds the lock.

Before each batch the worker checks that the files it is about to write are writable. A write
to the `-shm` file, which SQLite maps into memory and writes in every transaction, read or
write, is not an error the program sees when that file cannot be written (an immutable or
read-only file): the kernel kills the process with SIGBUS. So a batch that finds it, or the
`-wal` file, not writable fails before SQLite touches them, with StoreUnavailableError (nothing
was written). A file made immutable while a transaction is in flight cannot be caught that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from domain.errors import DomainError, OutcomeUnknownError, StoreCorruptedError, StoreUnavailableError

T = TypeVar("T")

_Work = Callable[[Any], Any]  # takes the batch's context (see Worker)
# (work or None to stop, deadline on the monotonic clock, future)
_Job = tuple[_Work | None, float, "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
_Context = Callable[[sqlite3.Cursor, float], Any]

_BUSY_STEP_MS = 100  # the busy timeout moves in these steps: one PRAGMA per step, not per batch


class Worker:
    """Runs jobs in batches, one transaction a batch, on a connection only its thread uses.

    `context(cursor, now)` makes what every job of a batch is given (one clock per batch, now in
    Unix seconds); `after_batch(context)` runs inside the transaction after its jobs (the
    writer's housekeeping). `guarded`: files that must be writable before a batch may run (see
    the module's docstring).
    `transactions` and `operations` count the committed transactions and the jobs they carried.
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        context: _Context,
        *,
        begin: str,
        max_batch: int,
        guarded: Sequence[Path],
        after_batch: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self.queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.transactions = 0
        self.operations = 0
        self._connect = connect
        self._context = context
        self._begin = begin
        self._max_batch = max_batch
        self._guarded = tuple(guarded)
        self._after_batch = after_batch
        self._thread: threading.Thread | None = None
        self._closing = False
        self._busy_ms = -1

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._closing

    async def start(self) -> None:
        """Open the connection in the worker's thread; raises what opening raised."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self.name, daemon=True)
        self._thread.start()
        try:
            await ready
        except DomainError:  # the thread has already ended
            self._thread = None
            raise

    async def stop(self) -> None:
        """Finish the queued jobs, then close the connection. Idempotent."""
        if self._thread is None or self._closing:
            return
        self._closing = True
        stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put((None, 0.0, stopped))
        await stopped
        self._thread = None

    async def submit(self, work: Callable[[Any], T], lock_wait: float) -> T:
        """Run `work` in a batch, waiting at most `lock_wait` seconds for the file's lock."""
        if not self.running:
            raise StoreUnavailableError("the SQLite store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.queue.put((work, time.monotonic() + lock_wait, future))
        try:
            return await future
        finally:
            # A raised error's traceback holds this frame, which holds the future, which holds
            # the error: a cycle per refused write unless the future goes now.
            del future

    # --- the thread -------------------------------------------------------------------------

    def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            connection = self._connect()
        except DomainError as error:
            deliver([(ready, None, error)])
            return
        deliver([(ready, None, None)])
        try:
            stopped = self._serve(connection.cursor())
        finally:
            connection.close()
        deliver([(stopped, None, None)])  # after closing, so stop() returns with the file closed

    def _serve(self, cursor: sqlite3.Cursor) -> asyncio.Future[Any]:
        """Run batches until stop() asks to stop; return the future that stop() awaits."""
        get, get_nowait = self.queue.get, self.queue.get_nowait
        while True:
            jobs = [get()]
            with contextlib.suppress(queue.Empty):
                while len(jobs) < self._max_batch:
                    jobs.append(get_nowait())
            stop = next((i for i, job in enumerate(jobs) if job[0] is None), None)
            if stop is None:
                deliver(self._execute(cursor, jobs))
                continue
            deliver(self._execute(cursor, jobs[:stop]))
            # Nothing is submitted after stop(); fail whatever raced past that check.
            late = jobs[stop + 1 :]
            with contextlib.suppress(queue.Empty):
                while True:
                    late.append(get_nowait())
            deliver([(f, None, StoreUnavailableError("the SQLite store is closed")) for *_, f in late])
            return jobs[stop][2]

    def _execute(self, cursor: sqlite3.Cursor, jobs: list[_Job]) -> list[_Outcome]:
        """Run the jobs in one transaction; a failed transaction fails every job and commits nothing."""
        if not jobs:
            return []
        unwritable = self._unwritable()
        if unwritable is not None:
            error = StoreUnavailableError(
                f"the SQLite file {unwritable} cannot be written (read-only or immutable); nothing was tried"
            )
            return [(f, None, error) for *_, f in jobs]
        self._wait_at_most(cursor, min(deadline for _, deadline, _ in jobs) - time.monotonic())
        context = self._context(cursor, time.time())
        outcomes: list[_Outcome] = []
        committing = False
        try:
            cursor.execute(self._begin)
            for work, _, future in jobs:
                try:
                    outcomes.append((future, work(context) if work else None, None))
                except DomainError as refused:  # checked before writing: nothing to undo
                    # Without its traceback, which holds this frame and so `outcomes`: a cycle.
                    outcomes.append((future, None, refused.with_traceback(None)))
            if self._after_batch is not None:
                self._after_batch(context)
            committing = True
            cursor.execute("COMMIT")
        except sqlite3.Error as error:
            _rollback(cursor)
            # A failed COMMIT may have reached the file (an I/O error after the WAL write).
            failed = store_error(error, "the SQLite transaction failed", committing=committing)
            return [(f, None, failed) for *_, f in jobs]
        except Exception as bug:  # noqa: BLE001 - the worker must outlive a bug; its callers get the error
            _rollback(cursor)
            return [(f, None, bug) for *_, f in jobs]
        self.transactions += 1
        self.operations += len(jobs)
        return outcomes

    def _unwritable(self) -> Path | None:
        # access(2) refuses W_OK for an immutable file even to root, and on a read-only mount.
        for path in self._guarded:
            if not os.access(path, os.W_OK) and path.exists():
                return path
        return None

    def _wait_at_most(self, cursor: sqlite3.Cursor, seconds: float) -> None:
        milliseconds = max(0, int(seconds * 1000) // _BUSY_STEP_MS * _BUSY_STEP_MS)
        if milliseconds != self._busy_ms:
            cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
            self._busy_ms = milliseconds


def store_error(error: sqlite3.Error, context: str, *, committing: bool = False) -> DomainError:
    """The domain's word for an SQLite failure. `committing`: the COMMIT itself failed, which may
    have reached the file (an I/O error after the WAL write): the outcome is unknown."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptedError(f"{context}: the file is damaged or not an SQLite database ({error})")
    if committing and code != sqlite3.SQLITE_BUSY:  # a COMMIT that found the lock taken wrote nothing
        return OutcomeUnknownError(f"{context} and the outcome is unknown: {error}")
    return StoreUnavailableError(f"{context}: {error}")


def _rollback(cursor: sqlite3.Cursor) -> None:
    # After some errors SQLite has already rolled back; then ROLLBACK itself fails, harmlessly.
    with contextlib.suppress(sqlite3.Error):
        cursor.execute("ROLLBACK")


def deliver(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their event loops: one wake-up per loop and batch, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, batch in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            loop.call_soon_threadsafe(_resolve, batch)


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():  # the caller was cancelled or timed out
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
