"""The SQLite store's schema, its version, and the migration of older files.

Kept apart from the store so that what a file holds, and how a file of an older version is
brought up to date, can be read in one place. The store applies it at start-up inside one
`BEGIN IMMEDIATE`, so that processes opening the same file take turns.
"""

from __future__ import annotations

import sqlite3

from domain.idempotency import Idempotency
from domain.model import DEFAULT_NAMESPACE

# 2: Idempotency-Key records are named by Idempotency.record_key, not by the raw key (migrate).
# 3: counters are named by (namespace, key); older rows are the namespace `default` (migrate).
# 4: counters created explicitly keep their rules (JSON), expiry and admin key hash (migrate).
# 5: counters and Idempotency-Key records keep the counter's version (migrate).
SCHEMA_VERSION = 5

COUNTERS = """CREATE TABLE IF NOT EXISTS counters (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL CHECK (typeof(count) = 'integer'),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        rules TEXT,
        expires_at REAL,
        admin_key_hash TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID"""
# The columns of version 4, NULL in every row of before: counters without rules.
RULE_COLUMNS = ("rules TEXT", "expires_at REAL", "admin_key_hash TEXT")
# The column of version 5, in counters and in idempotency_records: a counter (or the counter a
# record replays) of before is at version 1, the version of a counter that exists.
VERSION_COLUMN = "version INTEGER NOT NULL DEFAULT 1"

SCHEMA = (
    # WITHOUT ROWID: (namespace, key) is the only key, so one B-tree serves lookups and the
    # listing of a namespace sorted by key. Namespace and key are columns of their own, so no
    # two ids share a row and none is confused with another table's. The CHECK makes SQLite
    # itself refuse a non-integer count (its INTEGER affinity would otherwise keep 'abc' as text).
    COUNTERS,
    # One row per Idempotency-Key, named by Idempotency.record_key: the request's fingerprint and
    # the counter state the first request produced, kept until expires_at (Unix seconds). The
    # namespace and the version are the last columns because older files gain them by ALTER
    # TABLE (migrate).
    """CREATE TABLE IF NOT EXISTS idempotency_records (
        record_key TEXT PRIMARY KEY NOT NULL,
        fingerprint TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at REAL NOT NULL,
        namespace TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS idempotency_records_by_expiry ON idempotency_records (expires_at)",
    # One row that readiness rewrites: committing it proves the files can be written, and it is
    # no counter. A table a version 2 program without it ignores, so the version stays.
    """CREATE TABLE IF NOT EXISTS store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        probed_at TEXT NOT NULL
    )""",
)

# REPLACE, because an expired row with the same key may still be there. Columns in table order.
PUT_RECORD = "INSERT OR REPLACE INTO idempotency_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
PUT_PROBE = "INSERT OR REPLACE INTO store_probe (id, probed_at) VALUES (1, ?)"


def migrate(connection: sqlite3.Connection, now: float) -> None:
    """Bring an older schema's data up to SCHEMA_VERSION, inside the caller's transaction, after
    SCHEMA created what was missing."""
    _records_by_record_key(connection, now)
    _namespaces(connection)
    _rules(connection)
    _versions(connection)


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _namespaces(connection: sqlite3.Connection) -> None:
    """Versions 1 and 2 named a counter by one `name`: every such counter is the key `name` of
    the namespace `default`, and so are the counters of the records they kept.

    The old table is renamed, its rows copied, and it is dropped: its `name` column is gone, so
    a version 2 process still running on this file fails every statement on counters (a 503)
    instead of writing a row that matches a key in every namespace. Its record writes fail too
    (one column short)."""
    if "name" in _columns(connection, "counters"):
        connection.execute("ALTER TABLE counters RENAME TO counters_before_namespaces")
        connection.execute(COUNTERS)
        connection.execute(
            "INSERT INTO counters (namespace, key, count, created_at, updated_at)"
            " SELECT ?, name, count, created_at, updated_at FROM counters_before_namespaces",
            (DEFAULT_NAMESPACE,),
        )
        connection.execute("DROP TABLE counters_before_namespaces")
    if "namespace" not in _columns(connection, "idempotency_records"):
        connection.execute(
            "ALTER TABLE idempotency_records ADD COLUMN namespace TEXT NOT NULL"
            f" DEFAULT '{DEFAULT_NAMESPACE}'"
        )


def _rules(connection: sqlite3.Connection) -> None:
    """Version 3 counters had no rules: they gain the columns, NULL, and stay as they were. A
    version 3 process still on the file keeps working on them (it names its columns), but would
    not enforce the rules of the counters created after the upgrade: upgrade every process."""
    present = _columns(connection, "counters")
    for column in RULE_COLUMNS:
        if column.split()[0] not in present:
            connection.execute(f"ALTER TABLE counters ADD COLUMN {column}")
    # Only counters with an expiry are in it, so the purge of expired ones finds them cheaply.
    connection.execute(
        "CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at) WHERE expires_at IS NOT NULL"
    )


def _versions(connection: sqlite3.Connection) -> None:
    """Version 4 kept no versions: its counters, and the counters its Idempotency-Key records
    replay, gain the column at 1, and grow from there with every change. A version 4 process
    still on the file writes its changes without growing the version (an ETag taken before one
    of them would still match): upgrade every process."""
    for table in ("counters", "idempotency_records"):
        if "version" not in _columns(connection, table):
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {VERSION_COLUMN}")


def _records_by_record_key(connection: sqlite3.Connection, now: float) -> None:
    """Version 1 named Idempotency-Key records by the raw key, in `idempotency_keys`. Its live rows
    move to `idempotency_records` under their record_key, so a client retrying across the upgrade
    still gets its first result. The old table is dropped, not emptied: a version 1 process still
    running on this file then fails its keyed increments ("no such table", a 503 the client
    retries) instead of applying them again unseen; one started afterwards refuses the schema."""
    tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency_keys'"
    if connection.execute(tables).fetchone() is None:
        return
    # Version 1's columns, in its table order: key, then those of idempotency_records.
    rows = connection.execute("SELECT * FROM idempotency_keys WHERE expires_at > ?", (now,)).fetchall()
    records = [
        (Idempotency(k, fp, 0.0).record_key, fp, *rest, DEFAULT_NAMESPACE, 1)
        for k, fp, *rest in rows
        if isinstance(k, str)
    ]
    connection.executemany(PUT_RECORD, records)
    connection.execute("DROP TABLE idempotency_keys")
