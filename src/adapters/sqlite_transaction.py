"""The store's operations as the SQLite worker runs them, inside one open transaction, and the
reading of stored rows.

Each operation checks everything (overflow, idempotency key, readable data) before it writes, so
a refused operation writes nothing and does not affect the others of its batch. Data it cannot
read (a count that is not an integer, a timestamp that does not parse) raises
StoreCorruptedError and is never overwritten.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.sqlite_schema import PUT_PROBE, PUT_RECORD
from domain.errors import CounterExistsError, InvalidCounterNameError, StoreCorruptedError
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import (
    Counter,
    CounterId,
    Incremented,
    Page,
    Replaced,
    add_checked,
    check_value,
    check_version,
)
from domain.restore import Restored, decide_restore, state_to_restore
from domain.rules import Rules

# Constant SQL text: the sqlite3 module keeps each statement prepared in its statement cache.
_GET = (
    "SELECT count, created_at, updated_at, rules, expires_at, admin_key_hash, version FROM counters"
    " WHERE namespace = ? AND key = ?"
)
# A new row is at version 1, the column's default.
_INSERT = "INSERT INTO counters (namespace, key, count, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
_CREATE = (
    "INSERT INTO counters (namespace, key, count, created_at, updated_at, rules, expires_at,"
    " admin_key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# The expiry moves with every write: now + ttl_seconds, or NULL for a counter without a ttl. The
# version is the one read (and checked) in the same transaction, plus one.
_UPDATE = (
    "UPDATE counters SET count = ?, updated_at = ?, expires_at = ?, version = ?"
    " WHERE namespace = ? AND key = ?"
)
_TOUCH = "UPDATE counters SET expires_at = ? WHERE namespace = ? AND key = ?"
_DELETE = "DELETE FROM counters WHERE namespace = ? AND key = ?"
_LIST = (
    "SELECT key, count, created_at, updated_at, rules, expires_at, admin_key_hash, version FROM counters"
    " WHERE namespace = ? AND key > ?"
    " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"
)
# Expired rows too: whether a record still counts is the domain's decision, not the query's.
_GET_RECORD = (
    "SELECT fingerprint, namespace, name, count, created_at, updated_at, expires_at, version"
    " FROM idempotency_records WHERE record_key = ?"
)
_PURGE_RECORDS = (
    "DELETE FROM idempotency_records WHERE record_key IN"
    " (SELECT record_key FROM idempotency_records WHERE expires_at <= ? LIMIT ?)"
)
_PURGE_COUNTERS = (
    "DELETE FROM counters WHERE (namespace, key) IN (SELECT namespace, key FROM counters"
    " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)"
)
# The primary key's B-tree is sorted by namespace first, so this walks it without sorting.
_NAMESPACES = "SELECT DISTINCT namespace FROM counters WHERE namespace > ? ORDER BY namespace LIMIT ?"
_RESTORE = (
    "INSERT OR REPLACE INTO counters (namespace, key, count, created_at, updated_at, rules, expires_at,"
    " admin_key_hash, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PING = "SELECT 1 FROM counters LIMIT 1"  # touches the file and the schema, unlike a bare SELECT 1


class Transaction:
    """The operations as the worker runs them, inside one open transaction with one clock."""

    __slots__ = ("_cursor", "now", "now_epoch", "now_text")

    def __init__(self, cursor: sqlite3.Cursor, now_epoch: float) -> None:
        self._cursor = cursor
        self.now_epoch = now_epoch
        self.now = datetime.fromtimestamp(now_epoch, UTC)
        self.now_text = _text(self.now)

    def _row(self, sql: str, parameters: tuple[object, ...]) -> Any:
        return self._cursor.execute(sql, parameters).fetchone()

    def _live(self, name: CounterId, *, prune: bool) -> Any:
        """The counter's row, or None when it is missing or has expired. `prune` (writes only):
        an expired row is deleted, so what follows writes as on a missing counter."""
        row = self._row(_GET, (name.namespace, name.key))
        if row is not None and isinstance(row[4], int | float) and row[4] <= self.now_epoch:
            if prune:
                self._cursor.execute(_DELETE, (name.namespace, name.key))
            return None
        return row

    def get(self, counter: CounterId) -> Counter:
        row = self._live(counter, prune=False)
        return Counter(counter, 0) if row is None else _counter(counter, *row)

    def touch(self, name: CounterId) -> Counter:
        """The counter, its expiry moved forward when it has a ttl (a get with `touch`)."""
        row = self._live(name, prune=True)
        if row is None:
            return Counter(name, 0)
        current = _counter(name, *row)
        expiry = _expiry(current.rules, self.now_epoch)
        if expiry is None:
            return current
        self._cursor.execute(_TOUCH, (expiry, name.namespace, name.key))
        return _counter(name, *row[:4], expiry, *row[5:])

    def create(self, name: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        check_value(count)
        if self._live(name, prune=True) is not None:
            raise CounterExistsError(f"counter {str(name)!r} exists")
        expiry = _expiry(rules, self.now_epoch)
        stamp = self.now_text
        row = (count, stamp, stamp, rules.dump(), expiry, admin_key_hash)
        self._cursor.execute(_CREATE, (name.namespace, name.key, *row))
        return _counter(name, *row, 1)

    def increment(self, name: CounterId, by: int, idempotency: Idempotency | None) -> Incremented:
        if idempotency is not None:
            stored = self._row(_GET_RECORD, (idempotency.record_key,))
            replay = decide(idempotency, None if stored is None else _record(stored), self.now_epoch)
            if replay is not None:
                return replay
        row = self._live(name, prune=True)
        if row is None:
            counter = Counter(name, add_checked(name, 0, by), self.now, self.now, version=1)
            self._cursor.execute(
                _INSERT, (name.namespace, name.key, counter.count, self.now_text, self.now_text)
            )
        else:
            current = _counter(name, *row)
            if current.rules is not None:
                current.rules.check_step(name, by)
            counter = self._updated(current, add_checked(name, current.count, by))
        if idempotency is not None:
            record = idempotency.record(counter, self.now_epoch)
            created = self.now_text if row is None else row[1]  # as read, and checked, above
            columns = (record.fingerprint, name.key, counter.count, created, self.now_text, record.expires_at)
            self._cursor.execute(
                PUT_RECORD, (idempotency.record_key, *columns, name.namespace, counter.version)
            )
        return Incremented(counter=counter)

    def set(
        self, name: CounterId, count: int, expected_version: int | None, expected_created_at: datetime | None
    ) -> Replaced:
        """An admin overwrite, but not of unreadable data: that is left for a human to look at
        (delete removes it)."""
        check_value(count)  # a value SQLite cannot hold would fail the whole batch
        row = self._live(name, prune=True)
        if row is None:
            check_version(name, expected_version, 0, expected_created_at)
            self._cursor.execute(_INSERT, (name.namespace, name.key, count, self.now_text, self.now_text))
            return Replaced(counter=Counter(name, count, self.now, self.now, version=1), previous=0)
        current = _counter(name, *row)
        check_version(name, expected_version, current.version, expected_created_at, current.created_at)
        return Replaced(counter=self._updated(current, count), previous=current.count)

    def _updated(self, current: Counter, count: int) -> Counter:
        """Write `count` over `current`, its rules kept and its expiry moved forward."""
        expiry = _expiry(current.rules, self.now_epoch)
        name = current.id
        version = current.version + 1
        self._cursor.execute(_UPDATE, (count, self.now_text, expiry, version, name.namespace, name.key))
        moment = None if expiry is None else datetime.fromtimestamp(expiry, UTC)
        return Counter(
            name, count, current.created_at, self.now, current.rules, moment, current.admin_key_hash, version
        )

    def delete(
        self, name: CounterId, expected_version: int | None, expected_created_at: datetime | None
    ) -> Counter | None:
        """Remove the counter and return its last state. Unreadable data is refused here too, as
        in every store: it is reported and left for a human to look at, never silently dropped."""
        row = self._live(name, prune=True)
        if row is None:
            check_version(name, expected_version, 0, expected_created_at)
            return None
        counter = _counter(name, *row)  # raises StoreCorruptedError before anything is deleted
        check_version(name, expected_version, counter.version, expected_created_at, counter.created_at)
        self._cursor.execute(_DELETE, (name.namespace, name.key))
        return counter

    def list(self, namespace: str, after: str | None, limit: int) -> Page:
        # Keys are non-empty, so every key sorts after ''. One row more tells whether more follow.
        rows = self._cursor.execute(_LIST, (namespace, after or "", self.now_epoch, limit + 1)).fetchall()
        counters = [_counter(_stored_id(namespace, key), *rest) for key, *rest in rows[:limit]]
        more = len(rows) > limit
        return Page(counters=counters, next_after=counters[-1].key if more and counters else None)

    def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        return [row[0] for row in self._cursor.execute(_NAMESPACES, (after or "", limit)).fetchall()]

    def restore(self, wanted: Counter, replace: bool) -> Restored:
        """Write `wanted` where domain.restore says so, judged on the row read here, under the
        write lock: the check and the write are one transaction."""
        name = wanted.id
        row = self._live(name, prune=True)
        existing = None if row is None else _counter(name, *row)  # unreadable data is never replaced
        outcome = decide_restore(existing, wanted, replace=replace, now=self.now)
        if not outcome.writes:
            return Restored(outcome, existing or wanted)
        state = state_to_restore(wanted, existing, self.now)
        self._cursor.execute(
            _RESTORE,
            (
                name.namespace,
                name.key,
                check_value(state.count),
                _text(state.created_at or self.now),  # filled by state_to_restore
                _text(state.updated_at or self.now),
                None if state.rules is None else state.rules.dump(),
                None if state.expires_at is None else state.expires_at.timestamp(),
                state.admin_key_hash,
                state.version,
            ),
        )
        return Restored(outcome, state)

    def ping(self) -> None:
        self._cursor.execute(_PING).fetchall()

    def probe(self) -> None:
        """A real write that changes no counter: the one row of `store_probe` gets the time. Its
        commit proves the files can be written (readiness), at the cost of one small write."""
        self._cursor.execute(PUT_PROBE, (self.now_text,))

    def purge(self, limit: int) -> None:
        """Delete at most `limit` expired Idempotency-Key records, and as many expired counters
        (nobody sees them any more; a write to one deletes it anyway)."""
        self._cursor.execute(_PURGE_RECORDS, (self.now_epoch, limit))
        self._cursor.execute(_PURGE_COUNTERS, (self.now_epoch, limit))


def _stored_id(namespace: object, key: object) -> CounterId:
    """The CounterId of a stored row, or StoreCorruptedError when it names none."""
    try:
        return CounterId(namespace, key)  # type: ignore[arg-type]  # checked by CounterId itself
    except (InvalidCounterNameError, TypeError):
        raise StoreCorruptedError(
            f"a row names the counter {_show(key)} of namespace {_show(namespace)}, which is no counter name"
        ) from None


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _expiry(rules: Rules | None, now: float) -> float | None:
    return None if rules is None else rules.expiry_epoch(now)


def _counter(
    counter: CounterId, count: object, created_at: object, updated_at: object, *rest: object
) -> Counter:
    """A Counter from a stored row, or StoreCorruptedError when the row cannot be read. `rest`:
    rules, expires_at, admin_key_hash and version, when the row has them (Idempotency-Key records
    have the version only, after three None)."""
    name = str(counter)
    rules, expires_at, admin_key_hash, version = (*rest, None, None, None, 1)[:4]
    if type(count) is not int:
        raise StoreCorruptedError(
            f"counter {name!r} holds {_show(count)}, which is not an integer; it is left as it is",
            counter=name,
        )
    if type(version) is not int or version < 1:
        raise StoreCorruptedError(
            f"counter {name!r} is at version {_show(version)}, which is no version; it is left as it is",
            counter=name,
        )
    try:
        parsed = None if rules is None else Rules.load(rules)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        parsed = None
    if (rules is not None and parsed is None) or not (
        (expires_at is None or isinstance(expires_at, int | float))
        and (admin_key_hash is None or isinstance(admin_key_hash, str))
    ):
        raise StoreCorruptedError(
            f"counter {name!r} has rules {_show(rules)}, expiry {_show(expires_at)} or an admin key"
            " hash that cannot be read; it is left as it is",
            counter=name,
        )
    moment = None if expires_at is None else datetime.fromtimestamp(float(expires_at), UTC)
    return Counter(
        counter,
        count,
        _timestamp(name, created_at),
        _timestamp(name, updated_at),
        parsed,
        moment,
        admin_key_hash,
        version,
    )


def _record(row: tuple[object, ...]) -> IdempotencyRecord:
    """An IdempotencyRecord from a stored row, or StoreCorruptedError when it cannot be read."""
    fingerprint, namespace, key, count, created_at, updated_at, expires_at, version = row
    counter = _counter(_stored_id(namespace, key), count, created_at, updated_at, None, None, None, version)
    if not isinstance(fingerprint, str) or not isinstance(expires_at, int | float):
        raise StoreCorruptedError(
            f"an Idempotency-Key record of counter {str(counter.id)!r} holds the fingerprint"
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
