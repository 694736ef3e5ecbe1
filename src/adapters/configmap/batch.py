"""One batch: queued operations applied in order to one snapshot, in memory, before one write.

Each operation gets its own outcome, exactly as if the operations had been applied one by one: a
refused operation (an overflow, an unreadable counter, a reused Idempotency-Key) fails alone and
changes nothing, the others still go into the write. An increment with an Idempotency-Key looks up
its record in the same snapshot it is applied to, so the record and the count are written
together or not at all; what the record means (replay, refusal, expiry) is the domain's decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from adapters.configmap.codec import (
    IDEMPOTENCY_KEY,
    MAX_DATA_BYTES,
    NEW_COUNTER_BYTES,
    Codec,
    Snapshot,
    StoredRecord,
    Value,
    format_time,
    parse_time,
)
from domain.errors import DomainError, StoreCorruptedError
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, Incremented, Replaced, add_checked

Outcomes = list[Any]  # per operation: its result, or the DomainError it failed with


@dataclass(slots=True)
class Op:
    kind: Literal["increment", "set", "delete"]
    name: str
    amount: int
    idempotency: Idempotency | None
    future: asyncio.Future[Any]
    deadline: float = math.inf  # time.monotonic() after which it is refused, not written


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
    changes = batch.changes()
    must_write = bool(changes) or batch.records_changed or force
    if must_write:
        records = codec.records_value(
            batch.records, snapshot.data, batch.epoch, changed=batch.records_changed
        )
        if records is not None:
            changes[IDEMPOTENCY_KEY] = records
    return Plan(outcomes=outcomes, changes=changes, must_write=must_write)


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
        self._size: int | None = None
        self.records: dict[str, StoredRecord] | None = None  # None: the table was not needed
        self.records_changed = False

    def apply(self, op: Op) -> Any:
        try:
            if op.kind == "increment":
                return self._increment(op.name, op.amount, op.idempotency)
            if op.kind == "set":
                return self._set(op.name, op.amount)
            return self._delete(op.name)
        except DomainError as error:
            return error

    def changes(self) -> dict[str, str | None]:
        # A key created and deleted in the same batch leaves nothing to write.
        return {k: v for k, v in self._changes.items() if v is not None or k in self._snapshot.data}

    def _increment(self, name: str, by: int, idem: Idempotency | None) -> Incremented:
        if idem is not None:
            replayed = decide(idem, self._recorded(name, idem), self.epoch)
            if replayed is not None:
                return replayed
        old = self._current(name)
        count = add_checked(name, 0 if old is None else old.count, by)
        counter = self._store(name, old, count).counter(name)
        if idem is not None:
            table = self._table()
            table.pop(idem.record_key, None)  # re-inserted last, so that the table stays oldest first
            table[idem.record_key] = StoredRecord.of(idem.record(counter, self.epoch), self._stamp)
            self.records_changed = True
        return Incremented(counter=counter)

    def _set(self, name: str, count: int) -> Replaced:
        old = self._current(name)
        new = self._store(name, old, count)
        return Replaced(counter=new.counter(name), previous=0 if old is None else old.count)

    def _delete(self, name: str) -> Counter | None:
        old = self._current(name)
        if old is None:
            return None
        self._values[name] = None
        self._changes[name] = None
        return old.counter(name)

    def _current(self, name: str) -> Value | None:
        if name not in self._values:
            self._values[name] = self._codec.value(self._snapshot.data, name)
        return self._values[name]

    def _store(self, name: str, old: Value | None, count: int) -> Value:
        if old is None and name not in self._snapshot.data and name not in self._changes:
            if self._size is None:
                self._size = sum(len(k) + len(v) for k, v in self._snapshot.data.items())
            self._size += len(name) + NEW_COUNTER_BYTES
            if self._size > MAX_DATA_BYTES:
                raise self._codec.full_error()
        new = Value(
            count=count,
            created_at=self._stamp if old is None else old.created_at,
            updated_at=self._stamp,
            extra={} if old is None else old.extra,
        )
        self._values[name] = new
        self._changes[name] = new.dump()
        return new

    def _table(self) -> dict[str, StoredRecord]:
        if self.records is None:
            self.records = dict(self._codec.records(self._snapshot.data))
        return self.records

    def _recorded(self, name: str, idem: Idempotency) -> IdempotencyRecord | None:
        stored = self._table().get(idem.record_key)
        return None if stored is None else stored.for_counter(name, self._created_at(name))

    def _created_at(self, name: str) -> datetime | None:
        # The record does not keep the creation time; a replay reports it when the counter is readable.
        with contextlib.suppress(StoreCorruptedError):
            value = self._current(name)
            if value is not None and value.created_at is not None:
                return parse_time(value.created_at)
        return None
