"""The embedded default store: one SQLite file, safe for several processes, with group commit.

How it works, and why:
- One worker thread owns the sqlite3 connection, so the event loop never blocks on disk I/O and
  no thread is created per call. Callers put a job on a queue and await a future; the worker
  takes up to `max_batch` queued jobs and runs them in ONE transaction (group commit), then
  resolves their futures with one `call_soon_threadsafe` per batch. Under load one commit, the
  expensive part, serves many requests.
- Write batches start with `BEGIN IMMEDIATE`: it takes the file's write lock up front, so
  processes sharing the file serialize their writers and every read-modify-write is atomic
  (no SQLITE_BUSY half-way through a transaction). WAL lets readers go on meanwhile. A lock
  still held when the busy timeout ends fails the whole batch with StoreUnavailableError and
  nothing of it is committed.
- Jobs run one after the other inside the transaction, so a job sees what the jobs before it
  wrote (two increments with one Idempotency-Key in one batch apply once). Each job checks
  everything (overflow, idempotency key, readable data) before it writes, so a refused job
  writes nothing and does not affect the others.
- An Idempotency-Key's record is read and written inside the transaction of its increment, under
  the write lock, and the domain's `decide` judges it (replay, refusal, expiry): this module only
  stores records, named by `Idempotency.record_key`.
- Data it cannot read (a count that is not an integer, a timestamp that does not parse) raises
  StoreCorruptedError and is never overwritten: increment, set and delete refuse
  it. The schema's CHECK constraint already stops most hand edits that would store such data.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from adapters.sqlite_schema import PUT_RECORD, SCHEMA, SCHEMA_VERSION, migrate
from domain.errors import (
    DomainError,
    OutcomeUnknownError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, Incremented, Page, Replaced, add_checked, check_value

T = TypeVar("T")

# Expired idempotency keys are deleted inside every PURGE_EVERY-th write transaction, at most
# PURGE_LIMIT at a time, so that no single request pays for a large clean-up.
PURGE_EVERY = 128
PURGE_LIMIT = 1000

_SYNCHRONOUS = {"NORMAL": "PRAGMA synchronous=NORMAL", "FULL": "PRAGMA synchronous=FULL"}

# Constant SQL text: the sqlite3 module keeps each statement prepared in its statement cache.
_GET = "SELECT count, created_at, updated_at FROM counters WHERE name = ?"
_INSERT = "INSERT INTO counters (name, count, created_at, updated_at) VALUES (?, ?, ?, ?)"
_UPDATE = "UPDATE counters SET count = ?, updated_at = ? WHERE name = ?"
_DELETE = "DELETE FROM counters WHERE name = ?"
_LIST = "SELECT name, count, created_at, updated_at FROM counters WHERE name > ? ORDER BY name LIMIT ?"
# Expired rows too: whether a record still counts is the domain's decision, not the query's.
_GET_RECORD = (
    "SELECT fingerprint, name, count, created_at, updated_at, expires_at FROM idempotency_records"
    " WHERE record_key = ?"
)
_PURGE_RECORDS = (
    "DELETE FROM idempotency_records WHERE record_key IN"
    " (SELECT record_key FROM idempotency_records WHERE expires_at <= ? LIMIT ?)"
)
_PING = "SELECT 1 FROM counters LIMIT 1"  # touches the file and the schema, unlike a bare SELECT 1

_Work = Callable[["_Transaction"], Any]
_Job = tuple[_Work | None, bool, "asyncio.Future[Any]"]  # (work or None to stop, writes, future)
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
# Aliases, because inside the repository class `list` names its method, not the builtin.
_Jobs = list[_Job]
_Outcomes = list[_Outcome]


class SqliteCounterRepository:
    """CounterRepository on an SQLite file; see the module docstring for the design.

    Durability: WAL with `synchronous="NORMAL"` (the default) writes every commit to the WAL
    file before it returns, so a crash of the process loses nothing; the WAL is fsynced only at
    checkpoints, so a power cut or a kernel crash may roll back the last commits (the file stays
    consistent). `synchronous="FULL"` fsyncs at every commit, which group commit turns into one
    fsync per batch: choose it where an acknowledged increment must survive a power cut.

    `transactions` and `operations` count the committed transactions and the jobs they carried,
    for tests and benchmarks (operations / transactions is the mean batch size).
    """

    def __init__(
        self,
        path: str | Path,
        busy_timeout_seconds: float = 5.0,
        max_batch: int = 256,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        ping_timeout_seconds: float = 1.0,
    ) -> None:
        if busy_timeout_seconds < 0 or ping_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        self.path = Path(path)
        self.busy_timeout_seconds = busy_timeout_seconds
        self.max_batch = max_batch
        self.synchronous = synchronous
        self.ping_timeout_seconds = ping_timeout_seconds
        self.transactions = 0
        self.operations = 0
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._write_transactions = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the worker: create the directory, the file and the schema. Idempotent."""
        if self._thread is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"sqlite-store {self.path.name}", daemon=True
        )
        self._thread.start()
        try:
            await ready
        except DomainError:  # the worker has already ended
            self._thread = None
            raise

    async def close(self) -> None:
        """Finish the queued jobs, then close the connection. Idempotent."""
        thread = self._thread
        if thread is None or self._closing:
            return
        self._closing = True
        stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put((None, False, stopped))
        await stopped
        self._thread = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the port -------------------------------------------------------------------------

    async def get(self, name: str) -> Counter:
        return await self._submit(lambda tx: tx.get(name), writes=False)

    async def increment(self, name: str, by: int, idempotency: Idempotency | None = None) -> Incremented:
        return await self._submit(lambda tx: tx.increment(name, by, idempotency), writes=True)

    async def set(self, name: str, count: int) -> Replaced:
        return await self._submit(lambda tx: tx.set(name, count), writes=True)

    async def delete(self, name: str) -> Counter | None:
        return await self._submit(lambda tx: tx.delete(name), writes=True)

    async def list(self, after: str | None, limit: int) -> Page:
        return await self._submit(lambda tx: tx.list(after, limit), writes=False)

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self._submit(_Transaction.ping, writes=False), self.ping_timeout_seconds)
        except TimeoutError:
            raise StoreUnavailableError(
                f"the SQLite store did not answer within {self.ping_timeout_seconds:g} s"
            ) from None

    async def _submit(self, work: Callable[[_Transaction], T], *, writes: bool) -> T:
        if self._thread is None or self._closing:
            raise StoreUnavailableError("the SQLite store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((work, writes, future))
        return await future

    # --- the worker thread ----------------------------------------------------------------

    def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            connection = self._connect()
        except DomainError as error:
            _deliver([(ready, None, error)])
            return
        _deliver([(ready, None, None)])
        try:
            stopped = self._serve(connection.cursor())
        finally:
            connection.close()
        _deliver([(stopped, None, None)])  # after closing, so close() returns with the file closed

    def _connect(self) -> sqlite3.Connection:
        where = f"cannot open the SQLite store at {self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"{where}: cannot create its directory: {error}") from error
        try:
            # timeout= is SQLite's busy timeout; isolation_level=None leaves BEGIN/COMMIT to us.
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds, isolation_level=None)
        except sqlite3.Error as error:
            raise _store_error(error, where) from error
        try:
            # Where the file system cannot do WAL, SQLite keeps its rollback journal: slower
            # under concurrent readers, equally safe.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SYNCHRONOUS[self.synchronous])
            connection.execute("BEGIN IMMEDIATE")  # two processes creating the schema take turns
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailableError(
                    f"{where}: its schema version {version} is newer than this program"
                )
            for statement in SCHEMA:
                connection.execute(statement)
            if version < SCHEMA_VERSION:
                migrate(connection, time.time())
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.close()
            raise _store_error(error, where) from error
        except DomainError:
            connection.close()
            raise
        return connection

    def _serve(self, cursor: sqlite3.Cursor) -> asyncio.Future[Any]:
        """Run batches until close() asks to stop; return the future that close() awaits."""
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            jobs = [get()]
            with contextlib.suppress(queue.Empty):
                while len(jobs) < self.max_batch:
                    jobs.append(get_nowait())
            stop = next((i for i, job in enumerate(jobs) if job[0] is None), None)
            if stop is None:
                _deliver(self._execute(cursor, jobs))
                continue
            _deliver(self._execute(cursor, jobs[:stop]))
            # Nothing is submitted after close(); fail whatever raced past that check.
            late = jobs[stop + 1 :]
            with contextlib.suppress(queue.Empty):
                while True:
                    late.append(get_nowait())
            _deliver([(f, None, StoreUnavailableError("the SQLite store is closed")) for _, _, f in late])
            return jobs[stop][2]

    def _execute(self, cursor: sqlite3.Cursor, jobs: _Jobs) -> _Outcomes:
        """Run the jobs in one transaction; a failed transaction fails every job and commits nothing."""
        if not jobs:
            return []
        writes = any(job[1] for job in jobs)
        tx = _Transaction(cursor, time.time())
        outcomes: _Outcomes = []
        committing = False
        try:
            cursor.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            for work, _, future in jobs:
                try:
                    outcomes.append((future, work(tx) if work else None, None))
                except DomainError as refused:  # checked before writing: nothing to undo
                    outcomes.append((future, None, refused))
            if writes:
                self._write_transactions += 1
                if self._write_transactions % PURGE_EVERY == 0:
                    cursor.execute(_PURGE_RECORDS, (tx.now_epoch, PURGE_LIMIT))
            committing = True
            cursor.execute("COMMIT")
        except sqlite3.Error as error:
            _rollback(cursor)
            # A failed COMMIT may have reached the file (an I/O error after the WAL write).
            return [
                (f, None, _store_error(error, "the SQLite transaction failed", committing)) for *_, f in jobs
            ]
        except Exception as bug:  # noqa: BLE001 - the worker must outlive a bug; its callers get the error
            _rollback(cursor)
            return [(f, None, bug) for *_, f in jobs]
        self.transactions += 1
        self.operations += len(jobs)
        return outcomes


class _Transaction:
    """The operations as the worker runs them, inside one open transaction with one clock."""

    __slots__ = ("_cursor", "now", "now_epoch", "now_text")

    def __init__(self, cursor: sqlite3.Cursor, now_epoch: float) -> None:
        self._cursor = cursor
        self.now_epoch = now_epoch
        self.now = datetime.fromtimestamp(now_epoch, UTC)
        self.now_text = self.now.isoformat(timespec="microseconds")

    def _row(self, sql: str, parameters: tuple[object, ...]) -> Any:
        return self._cursor.execute(sql, parameters).fetchone()

    def get(self, name: str) -> Counter:
        row = self._row(_GET, (name,))
        return Counter(name=name, count=0) if row is None else _counter(name, *row)

    def increment(self, name: str, by: int, idempotency: Idempotency | None) -> Incremented:
        if idempotency is not None:
            stored = self._row(_GET_RECORD, (idempotency.record_key,))
            replay = decide(idempotency, None if stored is None else _record(stored), self.now_epoch)
            if replay is not None:
                return replay
        row = self._row(_GET, (name,))
        if row is None:
            counter = Counter(name, add_checked(name, 0, by), self.now, self.now)
            self._cursor.execute(_INSERT, (name, counter.count, self.now_text, self.now_text))
        else:
            current = _counter(name, *row)
            counter = Counter(name, add_checked(name, current.count, by), current.created_at, self.now)
            self._cursor.execute(_UPDATE, (counter.count, self.now_text, name))
        if idempotency is not None:
            record = idempotency.record(counter, self.now_epoch)
            created = self.now_text if row is None else row[1]  # as read, and checked, above
            columns = (record.fingerprint, name, counter.count, created, self.now_text, record.expires_at)
            self._cursor.execute(PUT_RECORD, (idempotency.record_key, *columns))
        return Incremented(counter=counter)

    def set(self, name: str, count: int) -> Replaced:
        """An admin overwrite, but not of unreadable data: that is left for a human to look at
        (delete removes it)."""
        check_value(count)  # a value SQLite cannot hold would fail the whole batch
        row = self._row(_GET, (name,))
        if row is None:
            self._cursor.execute(_INSERT, (name, count, self.now_text, self.now_text))
            return Replaced(counter=Counter(name, count, self.now, self.now), previous=0)
        current = _counter(name, *row)
        self._cursor.execute(_UPDATE, (count, self.now_text, name))
        return Replaced(counter=Counter(name, count, current.created_at, self.now), previous=current.count)

    def delete(self, name: str) -> Counter | None:
        """Remove the counter and return its last state. Unreadable data is refused here too, as
        in every store: it is reported and left for a human to look at, never silently dropped."""
        row = self._row(_GET, (name,))
        if row is None:
            return None
        counter = _counter(name, *row)  # raises StoreCorruptedError before anything is deleted
        self._cursor.execute(_DELETE, (name,))
        return counter

    def list(self, after: str | None, limit: int) -> Page:
        # Names are non-empty, so every name sorts after ''. One row more tells whether more follow.
        rows = self._cursor.execute(_LIST, (after or "", limit + 1)).fetchall()
        counters = [_counter(*row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(counters=counters, next_after=counters[-1].name if more and counters else None)

    def ping(self) -> None:
        self._cursor.execute(_PING).fetchall()


async def open_sqlite_repository(
    path: str | Path,
    busy_timeout_seconds: float = 5.0,
    max_batch: int = 256,
    *,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ping_timeout_seconds: float = 1.0,
) -> AsyncIterator[SqliteCounterRepository]:
    """An opened repository, closed when the generator resumes: for a dependency-injector Resource."""
    repository = SqliteCounterRepository(
        path,
        busy_timeout_seconds,
        max_batch,
        synchronous=synchronous,
        ping_timeout_seconds=ping_timeout_seconds,
    )
    await repository.open()
    try:
        yield repository
    finally:
        await repository.close()


def _counter(name: object, count: object, created_at: object, updated_at: object) -> Counter:
    """A Counter from a stored row, or StoreCorruptedError when the row cannot be read."""
    if type(count) is not int or not isinstance(name, str):
        raise StoreCorruptedError(
            f"counter {name!r} holds {_show(count)}, which is not an integer; it is left as it is"
        )
    return Counter(name, count, _timestamp(name, created_at), _timestamp(name, updated_at))


def _record(row: tuple[object, ...]) -> IdempotencyRecord:
    """An IdempotencyRecord from a stored row, or StoreCorruptedError when it cannot be read."""
    fingerprint, name, count, created_at, updated_at, expires_at = row
    counter = _counter(name, count, created_at, updated_at)
    if not isinstance(fingerprint, str) or not isinstance(expires_at, int | float):
        raise StoreCorruptedError(
            f"an Idempotency-Key record of counter {counter.name!r} holds the fingerprint"
            f" {_show(fingerprint)} and the expiry {_show(expires_at)}; it is left as it is"
        )
    return IdempotencyRecord(fingerprint, counter, float(expires_at))


def _timestamp(name: str, value: object) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise StoreCorruptedError(f"counter {name!r} has the timestamp {_show(value)}, which is not a date")
    # SQLite's own datetime('now') writes UTC without an offset.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _store_error(error: sqlite3.Error, context: str, committing: bool = False) -> DomainError:
    """The domain's word for an SQLite failure. `committing`: the COMMIT itself failed, which may
    have reached the file (an I/O error after the WAL write): the outcome is unknown."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptedError(f"{context}: the file is damaged or not an SQLite database ({error})")
    if committing:
        return OutcomeUnknownError(f"{context} and the outcome is unknown: {error}")
    return StoreUnavailableError(f"{context}: {error}")


def _rollback(cursor: sqlite3.Cursor) -> None:
    # After some errors SQLite has already rolled back; then ROLLBACK itself fails, harmlessly.
    with contextlib.suppress(sqlite3.Error):
        cursor.execute("ROLLBACK")


def _deliver(outcomes: list[_Outcome]) -> None:
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
