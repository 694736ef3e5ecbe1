"""A file of version 4 (rules, no versions) gains the version column, in counters and in the
Idempotency-Key records: what it held is at version 1 and grows from there."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from adapters.sqlite import SqliteCounterRepository
from adapters.sqlite_schema import SCHEMA_VERSION
from domain.errors import StoreCorruptedError
from domain.idempotency import Idempotency
from domain.model import CounterId
from tests.integration.test_sqlite_rules_upgrade import _STAMPS, _VERSION_3

_VISITS = CounterId.default("visits")
_KEY = Idempotency.for_increment("retried-across-the-upgrade", _VISITS, 1, 3600.0)
# A file of version 4: version 3's tables, as version 3 wrote them, with the columns and the
# index the upgrade to version 4 added.
_VERSION_4 = (
    *(statement for statement in _VERSION_3 if not statement.startswith(("INSERT", "PRAGMA"))),
    "ALTER TABLE counters ADD COLUMN rules TEXT",
    "ALTER TABLE counters ADD COLUMN expires_at REAL",
    "ALTER TABLE counters ADD COLUMN admin_key_hash TEXT",
    "CREATE INDEX counters_by_expiry ON counters (expires_at) WHERE expires_at IS NOT NULL",
    f"INSERT INTO counters VALUES ('default', 'visits', 41, {_STAMPS}, NULL, NULL, NULL)",
    f"INSERT INTO counters VALUES ('blog', 'post', 7, {_STAMPS}, NULL, NULL, NULL)",
    "PRAGMA user_version = 4",
)


@pytest.fixture
def version_4_file(tmp_path: Path) -> Path:
    path = tmp_path / "v4.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for statement in _VERSION_4:
            connection.execute(statement)
        connection.execute(
            f"INSERT INTO idempotency_records VALUES (?, ?, 'visits', 41, {_STAMPS}, ?, 'default')",
            (_KEY.record_key, _KEY.fingerprint, time.time() + 3600),
        )
        connection.commit()
    return path


async def test_a_version_4_file_is_at_version_1_and_grows(version_4_file: Path) -> None:
    async with SqliteCounterRepository(version_4_file) as repository:
        visits = await repository.get(_VISITS)
        assert (visits.count, visits.version) == (41, 1)
        replayed = await repository.increment(_VISITS, 1, _KEY)
        assert replayed.replayed
        assert (replayed.counter.count, replayed.counter.version) == (41, 1)
        grown = (await repository.increment(CounterId("blog", "post"), 1)).counter
        assert (grown.count, grown.version) == (8, 2)
        assert (await repository.increment(CounterId("blog", "new"), 1)).counter.version == 1
    with contextlib.closing(sqlite3.connect(version_4_file)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        for table in ("counters", "idempotency_records"):
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
            assert columns[-1] == "version"
    async with SqliteCounterRepository(version_4_file) as again:
        assert (await again.get(CounterId("blog", "post"))).version == 2
        assert (await again.get(_VISITS)).version == 1


async def test_an_unreadable_version_is_reported_and_left(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    async with SqliteCounterRepository(path) as repository:
        await repository.increment(_VISITS, 1)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("UPDATE counters SET version = 'x'")
        connection.commit()
    async with SqliteCounterRepository(path) as repository:
        with pytest.raises(StoreCorruptedError, match="version"):
            await repository.increment(_VISITS, 1)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count, version FROM counters").fetchone() == (1, "x")
