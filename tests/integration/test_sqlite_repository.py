"""The SQLite store on real files: the contract, several processes, faults and group commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from adapters.sqlite import PURGE_EVERY, SqliteCounterRepository, open_sqlite_repository
from adapters.sqlite_schema import SCHEMA_VERSION
from domain.errors import (
    CounterOverflowError,
    IdempotencyKeyReusedError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import INT64_MAX, CounterId
from tests.contract.repository_contract import RepositoryContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tests.contract.repository_contract import Reopen

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("sqlite_increment_worker.py")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "counters.sqlite3"  # the directory does not exist yet


@pytest.fixture
async def repository(db_path: Path) -> AsyncIterator[SqliteCounterRepository]:
    repository = SqliteCounterRepository(db_path)
    await repository.open()
    yield repository
    await repository.close()


@pytest.fixture
def raw(db_path: Path, repository: SqliteCounterRepository) -> Iterator[sqlite3.Connection]:
    """A plain connection on the same file, for what a human with the sqlite3 shell would do."""
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        yield connection


def key(value: str, name: str = "c", by: int = 1, ttl: float = 3600.0) -> Idempotency:
    return Idempotency.for_increment(value, CounterId.default(name), by, ttl)


class TestSqliteRepository(RepositoryContract):
    @pytest.fixture
    async def reopen(self, db_path: Path) -> AsyncIterator[Reopen]:
        opened: list[SqliteCounterRepository] = []

        async def reopen() -> SqliteCounterRepository:
            second = SqliteCounterRepository(db_path)
            await second.open()
            opened.append(second)
            return second

        yield reopen
        for second in opened:
            await second.close()


# --- several processes on one file --------------------------------------------------------


async def run_workers(db_path: Path, *argv: list[str]) -> list[list[list[Any]]]:
    """Start one worker process per argv, release them together, return what each wrote."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            str(db_path),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for args in argv
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate(b"go\n") for process in processes)), 120
    )
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    return [json.loads(stdout) for stdout, _ in outputs]


@pytest.mark.slow
async def test_two_processes_and_this_one_count_every_increment_once(
    repository: SqliteCounterRepository, db_path: Path
) -> None:
    workers = asyncio.ensure_future(run_workers(db_path, ["hot", "500", "10"], ["hot", "500", "10"]))
    here = [(await repository.increment(CounterId.default("hot"), 1)).counter.count for _ in range(200)]
    outputs = await workers
    counts = here + [count for output in outputs for count, _ in output]
    assert sorted(counts) == list(range(1, 1201))  # distinct: no two increments saw the same value
    assert (await repository.get(CounterId.default("hot"))).count == 1200


@pytest.mark.slow
async def test_an_idempotency_key_counts_once_across_processes(
    repository: SqliteCounterRepository, db_path: Path
) -> None:
    first, second = await run_workers(db_path, ["keyed", "200", "20", "k"], ["keyed", "200", "20", "k"])
    assert (await repository.get(CounterId.default("keyed"))).count == 200
    for (count_a, replayed_a), (count_b, replayed_b) in zip(first, second, strict=True):
        assert count_a == count_b  # the replay returns what the first request got
        assert replayed_a != replayed_b  # exactly one of the two applied it
    assert sorted(count for count, _ in first) == list(range(1, 201))


# --- group commit -------------------------------------------------------------------------


async def test_concurrent_increments_share_transactions(repository: SqliteCounterRepository) -> None:
    before = repository.transactions
    results = await asyncio.gather(*(repository.increment(CounterId.default("c"), 1) for _ in range(1000)))
    assert sorted(r.counter.count for r in results) == list(range(1, 1001))
    assert repository.transactions - before < 100


@contextlib.contextmanager
def write_lock(db_path: Path) -> Iterator[None]:
    """Another connection holding the write lock (in WAL mode EXCLUSIVE still lets readers in)."""
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")


async def worker_has_taken_every_job(repository: SqliteCounterRepository) -> None:
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if repository._writer.queue.empty():
            return


async def test_one_batch_runs_its_jobs_in_order_and_refusals_stay_alone(
    repository: SqliteCounterRepository, db_path: Path
) -> None:
    await repository.set(CounterId.default("big"), INT64_MAX)
    with write_lock(db_path):
        # The worker takes this job alone and waits for the lock; the next ones queue behind it.
        blocker = asyncio.ensure_future(repository.increment(CounterId.default("warm"), 1))
        await worker_has_taken_every_job(repository)
        before = repository.transactions
        jobs = [
            asyncio.ensure_future(job)
            for job in (
                repository.increment(CounterId.default("big"), 1),
                repository.increment(CounterId.default("x"), 1),
                repository.increment(CounterId.default("x"), 2),
                repository.increment(CounterId.default("c"), 1, key("k")),
                repository.increment(CounterId.default("c"), 1, key("k")),
                repository.increment(CounterId.default("c"), 2, key("k", by=2)),
            )
        ]
        await asyncio.sleep(0.1)
    overflow, x, x_again, first, replay, reused = await asyncio.gather(*jobs, return_exceptions=True)
    await blocker
    assert repository.transactions == before + 2  # the blocker's, then one for all six jobs
    assert isinstance(overflow, CounterOverflowError)
    assert isinstance(reused, IdempotencyKeyReusedError)
    assert getattr(getattr(x, "counter", None), "count", None) == 1
    assert getattr(getattr(x_again, "counter", None), "count", None) == 3  # it saw the one before
    assert getattr(first, "replayed", None) is False
    assert getattr(replay, "replayed", None) is True
    assert (await repository.get(CounterId.default("c"))).count == 1
    assert (await repository.get(CounterId.default("big"))).count == INT64_MAX


# --- faults -------------------------------------------------------------------------------


async def test_a_locked_database_is_unavailable_and_counts_nothing(db_path: Path) -> None:
    async with SqliteCounterRepository(db_path, lock_timeout_seconds=0.2) as repository:
        await repository.increment(CounterId.default("c"), 1)
        with write_lock(db_path):
            results = await asyncio.gather(
                *(repository.increment(CounterId.default("c"), 1) for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(r, StoreUnavailableError) for r in results), results
            assert "locked" in str(results[0])
            assert (await repository.get(CounterId.default("c"))).count == 1  # WAL: reads go on meanwhile
        assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 2


async def test_readiness_fails_while_the_write_lock_is_held_and_reads_go_on(db_path: Path) -> None:
    async with SqliteCounterRepository(
        db_path, lock_timeout_seconds=2, ping_timeout_seconds=0.2
    ) as repository:
        await repository.ping()
        with write_lock(db_path):
            blocked = asyncio.ensure_future(repository.increment(CounterId.default("c"), 1))
            await worker_has_taken_every_job(repository)
            with pytest.raises(StoreUnavailableError):
                await repository.ping()  # it cannot count now, so it is not ready
            assert (
                await repository.get(CounterId.default("c"))
            ).count == 0  # the reader does not queue behind it
        assert (await blocked).counter.count == 1
        await repository.ping()


@pytest.mark.parametrize("bad", ["abc", 1.5, b"\x00\x01", "", 2**63 - 1 + 0.0])
async def test_unreadable_count_is_reported_and_never_overwritten(
    repository: SqliteCounterRepository, raw: sqlite3.Connection, bad: object
) -> None:
    await repository.increment(CounterId.default("c"), 1)
    raw.execute("PRAGMA ignore_check_constraints = ON")  # the CHECK would refuse this edit
    raw.execute("UPDATE counters SET count = ? WHERE namespace = 'default' AND key = 'c'", (bad,))
    stored = raw.execute("SELECT count FROM counters").fetchone()
    for attempt in (
        repository.get(CounterId.default("c")),
        repository.increment(CounterId.default("c"), 1),
        repository.increment(CounterId.default("c"), 1, key("k")),
        repository.set(CounterId.default("c"), 0),
        repository.delete(CounterId.default("c")),
        repository.list("default", None, 10),
    ):
        with pytest.raises(StoreCorruptedError, match="not an integer"):
            await attempt
    assert raw.execute("SELECT count FROM counters").fetchone() == stored
    assert (
        await repository.increment(CounterId.default("other"), 1)
    ).counter.count == 1  # the store still works
    # a human repairs it by hand
    raw.execute("DELETE FROM counters WHERE namespace = 'default' AND key = 'c'")
    assert (
        await repository.increment(CounterId.default("c"), 1, key("k"))
    ).counter.count == 1  # the key was not used


async def test_the_schema_refuses_a_hand_written_non_integer(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    await repository.increment(CounterId.default("c"), 1)
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE counters SET count = 'abc' WHERE namespace = 'default' AND key = 'c'")


async def test_unreadable_timestamp_is_reported(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    await repository.increment(CounterId.default("c"), 1)
    raw.execute("UPDATE counters SET updated_at = 'yesterday' WHERE namespace = 'default' AND key = 'c'")
    with pytest.raises(StoreCorruptedError, match="not a date"):
        await repository.increment(CounterId.default("c"), 1)
    assert raw.execute("SELECT count FROM counters").fetchone() == (1,)
    # A timestamp written by SQLite's own datetime('now') is UTC without an offset: readable.
    raw.execute("UPDATE counters SET updated_at = datetime('now') WHERE namespace = 'default' AND key = 'c'")
    counter = await repository.get(CounterId.default("c"))
    assert counter.updated_at is not None
    assert counter.updated_at.utcoffset() is not None


async def test_unreadable_idempotency_record_is_reported(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    await repository.increment(CounterId.default("c"), 1, key("k"))
    raw.execute("UPDATE idempotency_records SET count = 'x'")
    with pytest.raises(StoreCorruptedError):
        await repository.increment(CounterId.default("c"), 1, key("k"))
    raw.execute("UPDATE idempotency_records SET count = 1, expires_at = 'soon'")
    with pytest.raises(StoreCorruptedError, match="expiry 'soon'"):
        await repository.increment(CounterId.default("c"), 1, key("k"))
    assert (await repository.get(CounterId.default("c"))).count == 1
    assert raw.execute("SELECT expires_at FROM idempotency_records").fetchall() == [("soon",)]


async def test_a_file_that_is_not_a_database_is_reported_on_open(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with pytest.raises(StoreCorruptedError, match="not an SQLite database"):
        await SqliteCounterRepository(path).open()
    assert path.read_bytes().startswith(b"this is not")


@pytest.mark.parametrize("where", ["a directory", "under a regular file"])
async def test_a_path_that_cannot_be_opened_is_reported_on_open(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path if where == "a directory" else tmp_path / "file" / "counters.sqlite3"
    repository = SqliteCounterRepository(path)
    with pytest.raises(StoreUnavailableError, match="cannot open the SQLite store at"):
        await repository.open()
    with pytest.raises(StoreUnavailableError, match="not open"):
        await repository.get(CounterId.default("c"))


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    async with SqliteCounterRepository(db_path):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreUnavailableError, match="schema version 99"):
        await SqliteCounterRepository(db_path).open()


# --- lifecycle, settings, housekeeping ----------------------------------------------------


async def test_open_creates_a_wal_file_and_timestamps_are_utc(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    counter = (await repository.increment(CounterId.default("c"), 1)).counter
    assert counter.created_at is not None
    assert counter.created_at.utcoffset() == timedelta(0)
    assert raw.execute("SELECT created_at FROM counters").fetchone() == (counter.created_at.isoformat(),)


async def test_open_and_close_are_idempotent_and_close_finishes_queued_jobs(db_path: Path) -> None:
    repository = SqliteCounterRepository(db_path)
    await repository.open()
    await repository.open()
    jobs = [asyncio.ensure_future(repository.increment(CounterId.default("c"), 1)) for _ in range(100)]
    await asyncio.sleep(0)  # every job is queued
    await repository.close()
    await repository.close()
    assert len({r.counter.count for r in await asyncio.gather(*jobs)}) == 100
    with pytest.raises(StoreUnavailableError, match="not open"):
        await repository.increment(CounterId.default("c"), 1)
    with pytest.raises(StoreUnavailableError, match="not open"):
        await repository.ping()
    await repository.open()  # a closed repository may be opened again
    assert (await repository.get(CounterId.default("c"))).count == 100
    await repository.close()


async def test_resource_generator_yields_an_open_repository_and_closes_it(db_path: Path) -> None:
    resource = open_sqlite_repository(db_path, lock_timeout_seconds=1, max_batch=8, synchronous="FULL")
    repository = await anext(resource)
    assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 1
    with pytest.raises(StopAsyncIteration):
        await anext(resource)
    with pytest.raises(StoreUnavailableError):
        await repository.get(CounterId.default("c"))


async def test_max_batch_bounds_a_transaction(db_path: Path) -> None:
    async with SqliteCounterRepository(db_path, max_batch=4) as repository:
        await asyncio.gather(*(repository.increment(CounterId.default("c"), 1) for _ in range(100)))
        assert repository.transactions >= 25


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="timeouts"):
        SqliteCounterRepository("x.sqlite3", lock_timeout_seconds=-1)
    with pytest.raises(ValueError, match="max_batch"):
        SqliteCounterRepository("x.sqlite3", max_batch=0)
    with pytest.raises(ValueError, match="synchronous"):
        SqliteCounterRepository("x.sqlite3", synchronous="OFF")  # type: ignore[arg-type]


async def test_expired_keys_are_purged(repository: SqliteCounterRepository, raw: sqlite3.Connection) -> None:
    await repository.increment(CounterId.default("c"), 1, key("short", ttl=0.05))
    await repository.increment(CounterId.default("c"), 1, key("long", ttl=3600))
    await asyncio.sleep(0.1)
    for _ in range(PURGE_EVERY):
        await repository.increment(CounterId.default("c"), 1)
    assert raw.execute("SELECT record_key FROM idempotency_records").fetchall() == [(key("long").record_key,)]


async def test_records_are_named_by_record_key_and_keep_the_whole_fingerprint(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    idempotency = key("a key: with spaces")
    await repository.increment(CounterId.default("c"), 1, idempotency)
    assert raw.execute("SELECT record_key, fingerprint, name, count FROM idempotency_records").fetchall() == [
        (idempotency.record_key, idempotency.fingerprint, "c", 1)
    ]


async def test_an_expired_record_not_yet_purged_is_judged_by_the_domain(
    repository: SqliteCounterRepository, raw: sqlite3.Connection
) -> None:
    await repository.increment(CounterId.default("c"), 1, key("k"))
    raw.execute("UPDATE idempotency_records SET expires_at = 1.0")  # expired long ago, still there
    again = await repository.increment(CounterId.default("c"), 1, key("k"))
    assert not again.replayed
    assert again.counter.count == 2
    # Replaced by the new record, which the next retry replays.
    (expires_at,) = raw.execute("SELECT expires_at FROM idempotency_records").fetchone()
    assert expires_at > 1.0
    assert (await repository.increment(CounterId.default("c"), 1, key("k"))).replayed


# --- the schema of an earlier version -----------------------------------------------------

_VERSION_1 = (
    """CREATE TABLE counters (
        name TEXT PRIMARY KEY NOT NULL,
        count INTEGER NOT NULL CHECK (typeof(count) = 'integer'),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY NOT NULL,
        fingerprint TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at)",
    "PRAGMA user_version = 1",
)


def write_version_1_file(db_path: Path, *records: tuple[Idempotency, int, float]) -> str:
    """A file as version 1 left it: counter 'c' at 7 and the given (key, count, expires_at)."""
    stamp = "2026-01-01T00:00:00.000000+00:00"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as old:
        for statement in _VERSION_1:
            old.execute(statement)
        old.execute("INSERT INTO counters VALUES ('c', 7, ?, ?)", (stamp, stamp))
        old.executemany(
            "INSERT INTO idempotency_keys VALUES (?, ?, 'c', ?, ?, ?, ?)",
            [(k.key, k.fingerprint, count, stamp, stamp, expires) for k, count, expires in records],
        )
    return stamp


async def test_a_version_1_file_keeps_its_counts_and_its_live_keys(db_path: Path) -> None:
    """Version 1 named records by the raw key. A client that retries across the upgrade is still
    answered with its first result; an expired record is not carried over."""
    live, expired = key("in flight: retried after the upgrade"), key("expired")
    stamp = write_version_1_file(db_path, (live, 7, time.time() + 3600), (expired, 6, time.time() - 1))
    async with SqliteCounterRepository(db_path) as repository:
        with contextlib.closing(sqlite3.connect(db_path)) as connection:
            assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            assert sorted(tables) == [("counters",), ("idempotency_records",), ("store_probe",)]
            assert connection.execute(
                "SELECT record_key, fingerprint, count FROM idempotency_records"
            ).fetchall() == [(live.record_key, live.fingerprint, 7)]
        replay = await repository.increment(CounterId.default("c"), 1, live)
        assert replay.replayed
        assert replay.counter.count == 7
        assert replay.counter.created_at == datetime.fromisoformat(stamp)
        applied = await repository.increment(CounterId.default("c"), 1, expired)
        assert not applied.replayed
        assert applied.counter.count == 8


async def test_a_version_1_process_still_running_fails_keyed_increments_loudly(db_path: Path) -> None:
    """The old table is dropped, not emptied: a process of the previous version that opened the
    file before the upgrade cannot look a key up any more, so its keyed increment fails (503)
    instead of applying a second time what this version recorded."""
    write_version_1_file(db_path, (key("k"), 7, time.time() + 3600))
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as old_process:
        old_process.execute("SELECT key FROM idempotency_keys").fetchall()  # it works before
        async with SqliteCounterRepository(db_path):
            pass
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            old_process.execute("SELECT key FROM idempotency_keys WHERE key = 'k'").fetchall()
