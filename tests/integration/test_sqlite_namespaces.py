"""A file written by the schema before namespaces (version 2) is read as the namespace `default`."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from adapters.sqlite import SqliteCounterRepository
from adapters.sqlite_schema import SCHEMA_VERSION
from domain.idempotency import Idempotency
from domain.model import CounterId

# The schema version 2 wrote, as it wrote it.
_VERSION_2 = (
    """CREATE TABLE counters (
        name TEXT PRIMARY KEY NOT NULL,
        count INTEGER NOT NULL CHECK (typeof(count) = 'integer'),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE idempotency_records (
        record_key TEXT PRIMARY KEY NOT NULL,
        fingerprint TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX idempotency_records_by_expiry ON idempotency_records (expires_at)",
    """CREATE TABLE store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        probed_at TEXT NOT NULL
    )""",
    "PRAGMA user_version = 2",
)
STAMP = "2026-01-01T00:00:00.000000+00:00"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "counter.db"


def write_version_2_file(db_path: Path, key: str) -> str:
    """A file as version 2 left it: `visits` at 7, `9` at 3, and the record of the Idempotency-Key
    `key` of an increment of `visits` by 1, fingerprinted as version 2 did."""
    fingerprint = hashlib.sha256(b"increment\nvisits\n1").hexdigest()
    record_key = hashlib.sha256(key.encode()).hexdigest()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as old:
        for statement in _VERSION_2:
            old.execute(statement)
        old.executemany(
            "INSERT INTO counters VALUES (?, ?, ?, ?)", [("visits", 7, STAMP, STAMP), ("9", 3, STAMP, STAMP)]
        )
        old.execute(
            "INSERT INTO idempotency_records VALUES (?, ?, 'visits', 7, ?, ?, ?)",
            (record_key, fingerprint, STAMP, STAMP, time.time() + 3600),
        )
    return fingerprint


async def test_a_version_2_file_is_the_namespace_default(db_path: Path) -> None:
    fingerprint = write_version_2_file(db_path, "retried across the upgrade")
    visits = CounterId.default("visits")
    key = Idempotency.for_increment("retried across the upgrade", visits, 1, 3600.0)
    assert key.fingerprint == fingerprint  # the default namespace keeps version 2's fingerprint
    async with SqliteCounterRepository(db_path) as repository:
        read = await repository.get(visits)
        assert (read.id, read.count, read.created_at) == (visits, 7, datetime.fromisoformat(STAMP))
        assert [(c.key, c.count) for c in (await repository.list("default", None, 10)).counters] == [
            ("9", 3),
            ("visits", 7),
        ]
        replay = await repository.increment(visits, 1, key)
        assert (replay.replayed, replay.counter.id, replay.counter.count) == (True, visits, 7)
        assert (await repository.increment(visits, 1)).counter.count == 8
        assert (await repository.get(CounterId("blog", "visits"))).count == 0
        assert (await repository.list("blog", None, 10)).counters == []
        await repository.increment(CounterId("blog", "visits"), 5)
        assert (await repository.get(visits)).count == 8
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert sorted(tables) == [("counters",), ("idempotency_records",), ("store_probe",)]
        rows = connection.execute("SELECT namespace, key, count FROM counters ORDER BY namespace, key")
        assert rows.fetchall() == [("blog", "visits", 5), ("default", "9", 3), ("default", "visits", 8)]
        assert connection.execute("SELECT namespace, name FROM idempotency_records").fetchall() == [
            ("default", "visits")
        ]


async def test_a_version_2_process_still_running_fails_instead_of_writing(db_path: Path) -> None:
    """Its statements name the column `name`, gone from `counters`, and write records one column
    short: each fails (a 503 for its client) instead of matching a key in every namespace."""
    write_version_2_file(db_path, "k")
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as old_process:
        old_process.execute("SELECT count FROM counters WHERE name = 'visits'").fetchall()  # it works before
        async with SqliteCounterRepository(db_path) as repository:
            await repository.increment(CounterId("blog", "visits"), 1)
        with pytest.raises(sqlite3.OperationalError, match="no such column"):
            old_process.execute("UPDATE counters SET count = 9 WHERE name = 'visits'")
        with pytest.raises(sqlite3.OperationalError, match="columns but 7 values"):
            old_process.execute(
                "INSERT OR REPLACE INTO idempotency_records VALUES ('r', 'f', 'visits', 1, 'a', 'b', 1.0)"
            )


async def test_a_migrated_file_is_opened_again_unchanged(db_path: Path) -> None:
    write_version_2_file(db_path, "k")
    async with SqliteCounterRepository(db_path):
        pass
    async with SqliteCounterRepository(db_path) as repository:
        assert (await repository.get(CounterId.default("visits"))).count == 7
