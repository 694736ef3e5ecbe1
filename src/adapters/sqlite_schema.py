"""The SQLite store's schema, its version, and the migration of older files.

Kept apart from the store so that what a file holds, and how a file of an older version is
brought up to date, can be read in one place. The store applies it at start-up inside one
`BEGIN IMMEDIATE`, so that processes opening the same file take turns.
"""

from __future__ import annotations

import sqlite3

from domain.idempotency import Idempotency

# 2: Idempotency-Key records are named by Idempotency.record_key, not by the raw key (migrate).
SCHEMA_VERSION = 2

SCHEMA = (
    # WITHOUT ROWID: the name is the only key, so one B-tree serves lookups and sorted listing.
    # The CHECK makes SQLite itself refuse a non-integer count (its INTEGER affinity would
    # otherwise keep 'abc' as text).
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY NOT NULL,
        count INTEGER NOT NULL CHECK (typeof(count) = 'integer'),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    # One row per Idempotency-Key, named by Idempotency.record_key: the request's fingerprint and
    # the counter state the first request produced, kept until expires_at (Unix seconds).
    """CREATE TABLE IF NOT EXISTS idempotency_records (
        record_key TEXT PRIMARY KEY NOT NULL,
        fingerprint TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at REAL NOT NULL
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
PUT_RECORD = "INSERT OR REPLACE INTO idempotency_records VALUES (?, ?, ?, ?, ?, ?, ?)"
PUT_PROBE = "INSERT OR REPLACE INTO store_probe (id, probed_at) VALUES (1, ?)"


def migrate(connection: sqlite3.Connection, now: float) -> None:
    """Bring an older schema's data up to SCHEMA_VERSION, inside the caller's transaction.

    Version 1 named Idempotency-Key records by the raw key, in `idempotency_keys`. Its live rows
    move to `idempotency_records` under their record_key, so a client retrying across the upgrade
    still gets its first result. The old table is dropped, not emptied: a version 1 process still
    running on this file then fails its keyed increments ("no such table", a 503 the client
    retries) instead of applying them again unseen; one started afterwards refuses the schema."""
    tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency_keys'"
    if connection.execute(tables).fetchone() is None:
        return
    # Version 1's columns, in its table order: key, then those of idempotency_records.
    rows = connection.execute("SELECT * FROM idempotency_keys WHERE expires_at > ?", (now,)).fetchall()
    records = [(Idempotency(k, fp, 0.0).record_key, fp, *rest) for k, fp, *rest in rows if isinstance(k, str)]
    connection.executemany(PUT_RECORD, records)
    connection.execute("DROP TABLE idempotency_keys")
