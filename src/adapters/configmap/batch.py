"""One batch: queued operations applied in order to one snapshot, in memory, before one write.

Each operation gets its own outcome, exactly as if the operations had been applied one by one: a
refused operation (an overflow, an unreadable counter, a reused Idempotency-Key) fails alone and
changes nothing, the others still go into the write. An increment with an Idempotency-Key looks up
its record in the same snapshot it is applied to, so the record and the count are written
together or not at all; what the record means (replay, refusal, expiry) is the domain's decision.

Each operation is also measured before it is applied (room): a new counter name or a new record
must leave room for everything reserved, a change of an existing counter only for itself, so a
full ConfigMap refuses the new ones alone and goes on counting, setting and deleting the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from adapters.configmap.codec import (
    IDEMPOTENCY_KEY,
    WRITERS_KEY,
    Codec,
    Snapshot,
    StoredRecord,
    Value,
    dump_records,
    format_time,
    parse_time,
)
from adapters.configmap.names import data_key
from adapters.configmap.room import Footprint, entry_bytes, store_full, table_full
from domain.errors import CounterExistsError, DomainError, StoreCorruptedError
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, CounterId, Incremented, Replaced, add_checked, check_version
from domain.restore import Restored, decide_restore, state_to_restore
from domain.rules import Rules

Outcomes = list[Any]  # per operation: its result, or the DomainError it failed with


@dataclass(slots=True)
class Op:
    kind: Literal["increment", "set", "delete", "create", "touch", "restore"]
    name: CounterId
    amount: int
    idempotency: Idempotency | None
    future: asyncio.Future[Any]
    deadline: float = math.inf  # time.monotonic() after which it is refused, not written
    rules: Rules | None = None  # create
    admin_key_hash: str | None = None  # create
    expected_version: int | None = None  # set, delete: compare-and-set
    expected_created_at: datetime | None = None  # set, delete: on this life of the counter only
    restored: Counter | None = None  # restore: the state to write
    replace: bool = False  # restore


@dataclass(slots=True)
class Plan:
    """What to write and what each operation returns once it is written."""

    outcomes: Outcomes
    changes: dict[str, str | None]  # key -> new value, None to remove
    must_write: bool


def plan(ops: list[Op], snapshot: Snapshot, codec: Codec, *, force: bool) -> Plan:
    """Apply `ops` to `snapshot`; `force` asks for a write even when nothing changes (a fence)."""
    batch = Batch(snapshot, codec)
    outcomes = [batch.apply(op) for op in ops]
    must_write = bool(batch.changes()) or batch.records_changed or force
    if must_write:
        batch.prune()
    changes = batch.changes()
    if must_write:
        records = codec.records_value(
            batch.records, snapshot.data, batch.epoch, changed=batch.records_changed
        )
        if records is not None:
            changes[IDEMPOTENCY_KEY] = records
    return Plan(outcomes=outcomes, changes=changes, must_write=must_write)


def _check(
    counter_id: CounterId, old: Value | None, version: int | None, created_at: datetime | None
) -> None:
    if old is None:
        check_version(counter_id, version, 0, created_at)
        return
    made = None if old.created_at is None else parse_time(old.created_at)
    check_version(counter_id, version, old.version, created_at, made)


def mark_retrieved(future: asyncio.Future[Any]) -> None:
    """A done-callback: the callers who wanted the exception may have been cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


class Batch:
    """The snapshot as the operations so far have left it."""

    def __init__(self, snapshot: Snapshot, codec: Codec) -> None:
        self._snapshot = snapshot
        self._codec = codec
        now = datetime.now(UTC)
        self.epoch = now.timestamp()
        self._stamp = format_time(now)
        self._values: dict[str, Value | None] = {}
        self._changes: dict[str, str | None] = {}
        self._room = codec.footprint(snapshot)
        self.records: dict[str, StoredRecord] | None = None  # None: the table was not needed
        self._table_bytes = 0  # what the `_idempotency` entry takes, once the table is loaded
        self.records_changed = False

    def apply(self, op: Op) -> Any:  # noqa: PLR0911 - one return per kind of operation
        try:
            if op.kind == "increment":
                return self._increment(op.name, op.amount, op.idempotency)
            if op.kind == "set":
                return self._set(op.name, op.amount, op.expected_version, op.expected_created_at)
            if op.kind == "create":
                return self._create(op.name, op.amount, op.rules or Rules(), op.admin_key_hash)
            if op.kind == "touch":
                return self._touch(op.name)
            if op.kind == "restore" and op.restored is not None:
                return self._restore(op.restored, op.replace)
            return self._delete(op.name, op.expected_version, op.expected_created_at)
        except DomainError as error:
            return error

    def changes(self) -> dict[str, str | None]:
        # A key created and deleted in the same batch leaves nothing to write.
        return {k: v for k, v in self._changes.items() if v is not None or k in self._snapshot.data}

    def _increment(self, counter_id: CounterId, by: int, idem: Idempotency | None) -> Incremented:
        name = data_key(counter_id)
        if idem is not None:
            replayed = decide(idem, self._recorded(counter_id, idem), self.epoch)
            if replayed is not None:
                return replayed
        old = self._live(name)
        if old is not None and old.rules is not None:
            old.rules.check_step(counter_id, by)
        count = add_checked(counter_id, 0 if old is None else old.count, by)
        new = self._next(old, count)
        counter = new.counter(counter_id)
        if idem is None:
            self._put(name, new)
            return Incremented(counter=counter)
        record = StoredRecord.of(idem.record(counter, self.epoch), self._stamp)
        record_bytes = self._record_bytes(idem.record_key, record)
        self._put(name, new, record_bytes=record_bytes)
        table = self._table()
        table.pop(idem.record_key, None)  # re-inserted last, so that the table stays oldest first
        table[idem.record_key] = record
        self._table_bytes += record_bytes
        self.records_changed = True
        return Incremented(counter=counter)

    def _set(
        self,
        counter_id: CounterId,
        count: int,
        expected_version: int | None,
        expected_created_at: datetime | None,
    ) -> Replaced:
        name = data_key(counter_id)
        old = self._live(name)
        _check(counter_id, old, expected_version, expected_created_at)
        new = self._next(old, count)
        self._put(name, new)
        return Replaced(counter=new.counter(counter_id), previous=0 if old is None else old.count)

    def _create(self, counter_id: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        name = data_key(counter_id)
        if self._live(name) is not None:
            raise CounterExistsError(f"counter {str(counter_id)!r} exists")
        new = Value(count, self._stamp, self._stamp, {}, rules, self._expiry(rules), admin_key_hash)
        self._put(name, new)
        return new.counter(counter_id)

    def _touch(self, counter_id: CounterId) -> Counter:
        name = data_key(counter_id)
        old = self._live(name)
        if old is None:
            return Counter(counter_id, 0)
        if old.rules is None or old.rules.ttl_seconds is None:
            return old.counter(counter_id)
        new = Value(
            old.count, old.created_at, old.updated_at, old.extra, old.rules, self._expiry(old.rules),
            old.admin_key_hash, old.version,
        )  # fmt: skip
        self._put(name, new)
        return new.counter(counter_id)

    def _restore(self, wanted: Counter, replace: bool) -> Restored:
        """`wanted` written where domain.restore says so, judged on this snapshot: the check and
        the write are one compare-and-swap. A replaced counter keeps no field of before."""
        name = data_key(wanted.id)
        old = self._live(name)
        existing = None if old is None else old.counter(wanted.id)
        now = datetime.fromtimestamp(self.epoch, UTC)
        outcome = decide_restore(existing, wanted, replace=replace, now=now)
        if not outcome.writes:
            return Restored(outcome, existing or wanted)
        state = state_to_restore(wanted, existing, now)
        new = Value(
            state.count,
            format_time(state.created_at or now),  # filled by state_to_restore
            format_time(state.updated_at or now),
            {},
            state.rules,
            None if state.expires_at is None else format_time(state.expires_at),
            state.admin_key_hash,
            state.version,
        )
        self._put(name, new)
        return Restored(outcome, new.counter(wanted.id))

    def _delete(
        self, counter_id: CounterId, expected_version: int | None, expected_created_at: datetime | None
    ) -> Counter | None:
        name = data_key(counter_id)
        old = self._live(name)
        _check(counter_id, old, expected_version, expected_created_at)
        if old is None:
            return None
        self._remove(name)
        return old.counter(counter_id)

    def _remove(self, name: str) -> None:
        self._room = self._room.after(self._data_now(name), {name: None}, WRITERS_KEY)
        self._values[name] = None
        self._changes[name] = None

    def _live(self, name: str) -> Value | None:
        """The counter's value, None when it is missing or has expired; an expired one is
        removed by this write."""
        value = self._current(name)
        if value is not None and value.expired(self.epoch):
            self._remove(name)
            return None
        return value

    def prune(self) -> None:
        """Remove the expired counters this write can take with it. Only values that have an
        expiry are parsed, so a ConfigMap of counters without one costs a substring search."""
        for name, raw in self._snapshot.data.items():
            if name in self._changes or '"expires_at"' not in raw:
                continue
            with contextlib.suppress(StoreCorruptedError):
                self._live(name)

    def _expiry(self, rules: Rules | None) -> str | None:
        expiry = None if rules is None else rules.expiry_epoch(self.epoch)
        return None if expiry is None else format_time(datetime.fromtimestamp(expiry, UTC))

    def _current(self, name: str) -> Value | None:
        if name not in self._values:
            self._values[name] = self._codec.value(self._snapshot.data, name)
        return self._values[name]

    def _next(self, old: Value | None, count: int) -> Value:
        """`count` written over `old` (an expired one is None here), its rules kept, its
        expiry moved forward, its version one more: k changes of a counter in one batch grow it
        by k, so that each answer is a state of its own."""
        if old is None:
            return Value(count=count, created_at=self._stamp, updated_at=self._stamp, extra={})
        return Value(
            count=count,
            created_at=old.created_at,
            updated_at=self._stamp,
            extra=old.extra,
            rules=old.rules,
            expires_at=self._expiry(old.rules),
            admin_key_hash=old.admin_key_hash,
            version=old.version + 1,
        )

    def _put(self, name: str, new: Value, *, record_bytes: int = 0) -> None:
        """Store `new` under `name` if it fits (and a new record of `record_bytes` with it)."""
        text = new.dump()
        creating = name not in self._data_now(name)
        room = self._fitting(name, text, record_bytes, creating=creating)
        if room is None:
            if self.records is None and IDEMPOTENCY_KEY in self._snapshot.data:
                with contextlib.suppress(StoreCorruptedError):
                    self._table()  # expired records are dropped, and their room given back
                    room = self._fitting(name, text, record_bytes, creating=creating)
            if room is None:
                raise self._full(record_bytes, creating=creating)
        self._room = room
        self._values[name] = new
        self._changes[name] = text

    def _fitting(self, name: str, text: str, record_bytes: int, *, creating: bool) -> Footprint | None:
        """The footprint with `text` stored under `name` (plus a record), None if it does not fit.

        Something new needs room for everything reserved; a change of an existing counter only
        for itself, and one that does not grow the data always fits.
        """
        room = self._room.after(self._data_now(name), {name: text}, WRITERS_KEY)
        room = Footprint(room.used + record_bytes, room.reserve)
        if creating or record_bytes:
            return room if room.fits_new() else None
        return room if room.fits() or room.used <= self._room.used else None

    def _full(self, record_bytes: int, *, creating: bool) -> DomainError:
        """Why it does not fit: live records hold the room a new key needs, or the store is full."""
        if record_bytes and not creating and self.records:
            oldest = min(record.expires for record in self.records.values())
            return table_full(self._codec.where, oldest - self.epoch)
        return store_full(self._codec.where)

    def _data_now(self, name: str) -> dict[str, str]:
        """`name`'s text as the batch has left it, as a one-key map (empty: absent)."""
        text = self._changes[name] if name in self._changes else self._snapshot.data.get(name)
        return {} if text is None else {name: text}

    def _table(self) -> dict[str, StoredRecord]:
        """The live records (expired ones dropped, and the room they took given back)."""
        if self.records is None:
            stored = self._codec.records(self._snapshot.data)
            live = {k: r for k, r in stored.items() if not r.expired(self.epoch)}
            raw = self._snapshot.data.get(IDEMPOTENCY_KEY)
            before = 0 if raw is None else entry_bytes(IDEMPOTENCY_KEY, raw)
            after = before if len(live) == len(stored) else entry_bytes(IDEMPOTENCY_KEY, dump_records(live))
            self._room = Footprint(self._room.used - before + after, self._room.reserve)
            self._table_bytes = after
            self.records = live
        return self.records

    def _record_bytes(self, record_key: str, record: StoredRecord) -> int:
        """What one more record adds to the `_idempotency` entry, escapes included."""
        self._table()
        text = dump_records({record_key: record})
        if not self._table_bytes:  # the entry itself is new
            return entry_bytes(IDEMPOTENCY_KEY, text)
        return len(json.dumps(text[1:-1])) - 1  # `"key":{...}` escaped, without its quotes, and a comma

    def _recorded(self, counter: CounterId, idem: Idempotency) -> IdempotencyRecord | None:
        stored = self._table().get(idem.record_key)
        return None if stored is None else stored.for_counter(counter, self._created_at(data_key(counter)))

    def _created_at(self, name: str) -> datetime | None:
        # The record does not keep the creation time; a replay reports it when the counter is readable.
        with contextlib.suppress(StoreCorruptedError):
            value = self._current(name)
            if value is not None and value.created_at is not None:
                return parse_time(value.created_at)
        return None
