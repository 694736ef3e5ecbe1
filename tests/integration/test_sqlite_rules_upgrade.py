"""A file of version 3 (namespaces, no rules) gains the rule columns and keeps every counter."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite import PURGE_EVERY, SqliteCounterRepository
from adapters.sqlite_schema import SCHEMA_VERSION
from domain.errors import CounterExistsError, StepOutOfRangeError
from domain.model import CounterId
from domain.rules import Rules

_STAMPS = "'2026-01-02T03:04:05.000000+00:00', '2026-01-02T03:04:06.000000+00:00'"
# The schema version 3 wrote, as it wrote it.
_VERSION_3 = (
    """CREATE TABLE counters (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL CHECK (typeof(count) = 'integer'),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE idempotency_records (
        record_key TEXT PRIMARY KEY NOT NULL,
        fingerprint TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at REAL NOT NULL,
        namespace TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX idempotency_records_by_expiry ON idempotency_records (expires_at)",
    """CREATE TABLE store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        probed_at TEXT NOT NULL
    )""",
    f"INSERT INTO counters VALUES ('default', 'visits', 41, {_STAMPS})",
    f"INSERT INTO counters VALUES ('blog', 'post', 7, {_STAMPS})",
    "PRAGMA user_version = 3",
)


@pytest.fixture
def version_3_file(tmp_path: Path) -> Path:
    path = tmp_path / "v3.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for statement in _VERSION_3:
            connection.execute(statement)
        connection.commit()
    return path


async def test_a_version_3_file_keeps_its_counters_and_takes_rules(version_3_file: Path) -> None:
    async with SqliteCounterRepository(version_3_file) as repository:
        visits = await repository.get(CounterId.default("visits"))
        assert (visits.count, visits.rules, visits.expires_at, visits.admin_key_hash) == (
            41,
            None,
            None,
            None,
        )
        assert visits.created_at is not None
        assert visits.created_at.isoformat() == "2026-01-02T03:04:05+00:00"
        assert (await repository.increment(CounterId("blog", "post"), 100)).counter.count == 107
        with pytest.raises(CounterExistsError):
            await repository.create(CounterId("blog", "post"), 0, Rules(), None)
        made = await repository.create(CounterId("blog", "ruled"), 1, Rules(max_step=1, ttl_seconds=60), "h")
        assert made.expires_at is not None
        with pytest.raises(StepOutOfRangeError):
            await repository.increment(CounterId("blog", "ruled"), 2)
    with contextlib.closing(sqlite3.connect(version_3_file)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        columns = [row[1] for row in connection.execute("PRAGMA table_info(counters)")]
        assert columns[-4:] == ["rules", "expires_at", "admin_key_hash", "version"]
    async with SqliteCounterRepository(version_3_file) as again:
        ruled = await again.get(CounterId("blog", "ruled"))
        assert (ruled.count, ruled.rules, ruled.admin_key_hash) == (1, Rules(max_step=1, ttl_seconds=60), "h")
        assert (await again.get(CounterId.default("visits"))).count == 41


async def test_expired_counters_nobody_touches_are_purged(tmp_path: Path) -> None:
    path = tmp_path / "purge.db"
    async with SqliteCounterRepository(path) as repository:
        await repository.create(CounterId("ns", "brief"), 1, Rules(ttl_seconds=1), None)
        await repository.create(CounterId("ns", "lasting"), 1, Rules(ttl_seconds=3600), None)
        await asyncio.sleep(1.2)
        for _ in range(PURGE_EVERY):  # one batch each: the housekeeping runs within them
            await repository.increment(CounterId("ns", "busy"), 1)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        keys = [row[0] for row in connection.execute("SELECT key FROM counters ORDER BY key")]
    assert keys == ["busy", "lasting"]
