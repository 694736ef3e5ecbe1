"""The embedded default store: one SQLite file, safe for several processes, with group commit.

How it works, and why:
- Two worker threads (adapters.sqlite_worker), each owning one sqlite3 connection, so the event
  loop never blocks on disk I/O and no thread is created per call. Callers put a job on a
  worker's queue and await a future; the worker takes up to `max_batch` queued jobs and runs
  them in ONE transaction (group commit), then resolves their futures with one
  `call_soon_threadsafe` per batch. Under load one commit, the expensive part, serves many
  requests.
- The writer's batches start with `BEGIN IMMEDIATE`: it takes the file's write lock up front, so
  processes sharing the file serialize their writers and every read-modify-write is atomic (no
  SQLITE_BUSY half-way through a transaction). The reader runs `get`, `list` and the read half
  of `ping` in read transactions on its own connection: with WAL they never wait for a writer,
  so reads are served while the writer waits for a lock another process holds.
- A write waits for the lock at most `lock_timeout_seconds` from the moment it was submitted;
  then it fails with StoreUnavailableError (a 503 with Retry-After) and nothing of it is
  written. A batch fails or commits as a whole.
- `ping` proves what readiness claims, that the service can count: it commits a write to a
  table that holds no counter (`store_probe`), through the writer like any increment, and runs a
  read through the reader. Files that cannot be written fail it, and every write, before SQLite
  is asked (see adapters.sqlite_worker on why it must not be asked).
- Jobs run one after the other inside the transaction, so a job sees what the jobs before it
  wrote (two increments with one Idempotency-Key in one batch apply once). Each job checks
  everything before it writes (adapters.sqlite_transaction), so a refused job writes nothing.
- An Idempotency-Key's record is read and written inside the transaction of its increment, under
  the write lock, and the domain's `decide` judges it (replay, refusal, expiry): the store only
  keeps records, named by `Idempotency.record_key`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, Self, TypeVar

from adapters.sqlite_schema import SCHEMA, SCHEMA_VERSION, migrate
from adapters.sqlite_transaction import Transaction
from adapters.sqlite_worker import Worker, store_error
from domain.errors import DomainError, StoreUnavailableError
from domain.idempotency import Idempotency
from domain.model import Counter, CounterId, Incremented, Page, Replaced
from domain.restore import Restored
from domain.rules import Rules

T = TypeVar("T")

# Expired idempotency keys are deleted inside every PURGE_EVERY-th write transaction, at most
# PURGE_LIMIT at a time, so that no single request pays for a large clean-up.
PURGE_EVERY = 128
PURGE_LIMIT = 1000

_SYNCHRONOUS = {"NORMAL": "PRAGMA synchronous=NORMAL", "FULL": "PRAGMA synchronous=FULL"}


class SqliteCounterRepository:
    """CounterRepository on an SQLite file; see the module docstring for the design.

    Durability: WAL with `synchronous="NORMAL"` (the default) writes every commit to the WAL
    file before it returns, so a crash of the process loses nothing; the WAL is fsynced only at
    checkpoints, so a power cut or a kernel crash may roll back the last commits (the file stays
    consistent). `synchronous="FULL"` fsyncs at every commit, which group commit turns into one
    fsync per batch: choose it where an acknowledged increment must survive a power cut.

    `lock_timeout_seconds`: the longest a request waits for a lock held by another connection.
    `transactions` and `operations` count the committed write transactions and the jobs they
    carried, for tests and benchmarks (operations / transactions is the mean batch size).
    """

    def __init__(
        self,
        path: str | Path,
        lock_timeout_seconds: float = 2.0,
        max_batch: int = 256,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        ping_timeout_seconds: float = 1.0,
    ) -> None:
        if lock_timeout_seconds < 0 or ping_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        self.path = Path(path)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.max_batch = max_batch
        self.synchronous = synchronous
        self.ping_timeout_seconds = ping_timeout_seconds
        self._write_batches = 0
        wal, shm = (self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm"))
        self._writer = Worker(
            f"sqlite-writer {self.path.name}",
            self._connect_writer,
            Transaction,
            begin="BEGIN IMMEDIATE",
            max_batch=max_batch,
            guarded=(wal, shm),
            after_batch=self._housekeeping,
        )
        self._reader = Worker(
            f"sqlite-reader {self.path.name}",
            self._connect_reader,
            Transaction,
            begin="BEGIN",
            max_batch=max_batch,
            guarded=(shm,),
        )

    @property
    def transactions(self) -> int:
        return self._writer.transactions

    @property
    def operations(self) -> int:
        return self._writer.operations

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the workers: create the directory, the file and the schema. Idempotent."""
        if self._writer.running:
            return
        await self._writer.start()  # the writer creates the file and the schema
        try:
            await self._reader.start()
        except DomainError:
            await self._writer.stop()
            raise

    async def close(self) -> None:
        """Finish the queued jobs, then close the connections. Idempotent."""
        await asyncio.gather(self._reader.stop(), self._writer.stop())

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the port -------------------------------------------------------------------------

    async def get(self, counter: CounterId, touch: bool = False) -> Counter:
        if touch:  # moves the expiry: a write
            return await self._write(lambda tx: tx.touch(counter))
        return await self._read(lambda tx: tx.get(counter))

    async def create(
        self, counter: CounterId, count: int, rules: Rules, admin_key_hash: str | None
    ) -> Counter:
        return await self._write(lambda tx: tx.create(counter, count, rules, admin_key_hash))

    async def increment(
        self, counter: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        return await self._write(lambda tx: tx.increment(counter, by, idempotency))

    async def set(
        self,
        counter: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        return await self._write(lambda tx: tx.set(counter, count, expected_version, expected_created_at))

    async def delete(
        self,
        counter: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        return await self._write(lambda tx: tx.delete(counter, expected_version, expected_created_at))

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        return await self._read(lambda tx: tx.list(namespace, after, limit))

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        return await self._read(lambda tx: tx.namespaces(after, limit))

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        return await self._write(lambda tx: tx.restore(counter, replace))

    async def ping(self) -> None:
        """Ready means able to count: a write is committed (to no counter) and a read answers."""
        timeout = self.ping_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(
                    self._writer.submit(Transaction.probe, min(timeout, self.lock_timeout_seconds)),
                    self._reader.submit(Transaction.ping, min(timeout, self.lock_timeout_seconds)),
                )
        except TimeoutError:
            raise StoreUnavailableError(f"the SQLite store did not answer within {timeout:g} s") from None

    async def _read(self, work: Callable[[Transaction], T]) -> T:
        return await self._reader.submit(work, self.lock_timeout_seconds)

    async def _write(self, work: Callable[[Transaction], T]) -> T:
        return await self._writer.submit(work, self.lock_timeout_seconds)

    def _housekeeping(self, tx: Transaction) -> None:
        self._write_batches += 1
        if self._write_batches % PURGE_EVERY == 0:
            tx.purge(PURGE_LIMIT)

    # --- connections (each opened in its worker's thread) -----------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        where = f"cannot open the SQLite store at {self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"{where}: cannot create its directory: {error}") from error
        connection = self._connection(where)
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
            raise store_error(error, where) from error
        except DomainError:
            connection.close()
            raise
        return connection

    def _connect_reader(self) -> sqlite3.Connection:
        where = f"cannot open the SQLite store at {self.path} for reading"
        connection = self._connection(where)
        try:
            connection.execute("PRAGMA query_only=ON")  # this connection never takes the write lock
        except sqlite3.Error as error:
            connection.close()
            raise store_error(error, where) from error
        return connection

    def _connection(self, where: str) -> sqlite3.Connection:
        try:
            # timeout= is SQLite's busy timeout; isolation_level=None leaves BEGIN/COMMIT to us.
            return sqlite3.connect(self.path, timeout=self.lock_timeout_seconds, isolation_level=None)
        except sqlite3.Error as error:
            raise store_error(error, where) from error


async def open_sqlite_repository(
    path: str | Path,
    lock_timeout_seconds: float = 2.0,
    max_batch: int = 256,
    *,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ping_timeout_seconds: float = 1.0,
) -> AsyncIterator[SqliteCounterRepository]:
    """An opened repository, closed when the generator resumes: for a dependency-injector Resource."""
    repository = SqliteCounterRepository(
        path,
        lock_timeout_seconds,
        max_batch,
        synchronous=synchronous,
        ping_timeout_seconds=ping_timeout_seconds,
    )
    await repository.open()
    try:
        yield repository
    finally:
        await repository.close()
