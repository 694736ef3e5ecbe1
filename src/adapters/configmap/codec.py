"""The stored document: what each data key of the ConfigMap holds, read strictly, written back whole.

A counter is one data key (which one: names), whose value is `{"count": N, "created_at": ...,
"updated_at": ..., "version": V}` (V: 1 once made, one more with each change written; a value
written before versions has none and reads as version 1); a counter created explicitly has
`rules` (Rules.dump's object), and, when they give it a ttl, `expires_at`, and the
`admin_key_hash` of its admin key, each only where it has one, so a counter of before reads as one
without rules. Fields this version does not know are kept as they were. Two reserved keys
start with `_`, which no counter's data key does (names): `_idempotency` (one record per
Idempotency-Key, named by `Idempotency.record_key`) and `_writers` (the last write sequence number
of each writer and the second it wrote, which lets a writer recognise its own write after a
timeout, and see which other writers are at work: contention).

Whatever cannot be read is reported as StoreCorruptedError and never overwritten: a counter
someone edited by hand is fixed by hand, not silently reset. `_writers` is the exception: it is
only a hint for settling lost answers, so an unreadable one is ignored and replaced.

Records are kept until they expire (the domain's rule, `IdempotencyRecord.expired`), whatever
else arrives: an expired one is dropped whenever the table is written, a live one never. How
much the ConfigMap can hold, and what is refused when it is full, is the room module's concern;
the codec remembers the footprint of the snapshots it has seen (`footprint`), so that it is
computed once per state of the ConfigMap, not once per batch.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from adapters.configmap.room import MAX_WRITER_ID, MAX_WRITERS, Footprint
from domain.errors import StoreCorruptedError
from domain.idempotency import IdempotencyRecord
from domain.model import DEFAULT_COUNTER, INT64_MAX, INT64_MIN, Counter, CounterId
from domain.rules import Rules

IDEMPOTENCY_KEY: Final = "_idempotency"
WRITERS_KEY: Final = "_writers"

# A writer's entry in `_writers` is only needed for the seconds between a write and its check;
# keep it an hour and at most MAX_WRITERS writers, most recent first.
WRITER_TTL_SECONDS: Final = 3600.0
_MAX_UNIX_TIME: Final = 10**11  # the year 5138: larger is not a time this store wrote

# Record names and fingerprints are SHA-256 in hex. The previous version kept 32 characters of
# each; such a record can never match a key again, so it is dropped on read, not refused.
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class UnreadableError(ValueError):
    """Stored or received text that does not have the expected shape."""


def _reject_constant(token: str) -> Any:
    raise UnreadableError(f"{token} is not JSON")


def loads(text: str) -> Any:
    """JSON as the API and `kubectl edit` write it: NaN and Infinity are not numbers here."""
    return json.loads(text, parse_constant=_reject_constant)


# --- counters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """One counter's stored document. Unknown fields are kept as they were."""

    count: int
    created_at: str | None
    updated_at: str | None
    extra: Mapping[str, Any]
    rules: Rules | None = None
    expires_at: str | None = None
    admin_key_hash: str | None = None
    version: int = 1

    def counter(self, name: CounterId) -> Counter:
        return Counter(
            id=name,
            count=self.count,
            created_at=None if self.created_at is None else parse_time(self.created_at),
            updated_at=None if self.updated_at is None else parse_time(self.updated_at),
            rules=self.rules,
            expires_at=None if self.expires_at is None else parse_time(self.expires_at),
            admin_key_hash=self.admin_key_hash,
            version=self.version,
        )

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and parse_time(self.expires_at).timestamp() <= now

    def dump(self) -> str:
        # The version, then the rule fields come after updated_at, so the start of the value
        # stays what room reads.
        doc: dict[str, Any] = {"count": self.count}
        if self.created_at is not None:
            doc["created_at"] = self.created_at
        if self.updated_at is not None:
            doc["updated_at"] = self.updated_at
        doc["version"] = self.version
        if self.rules is not None:
            doc["rules"] = json.loads(self.rules.dump())
        if self.expires_at is not None:
            doc["expires_at"] = self.expires_at
        if self.admin_key_hash is not None:
            doc["admin_key_hash"] = self.admin_key_hash
        doc.update(self.extra)
        return json.dumps(doc)


def parse_value(raw: str) -> Value:
    """The stored document, or ValueError saying what is wrong with it."""
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise UnreadableError("not a JSON object")
    count = doc.get("count")
    if type(count) is not int:
        raise ValueError("'count' is not an integer")
    if not INT64_MIN <= count <= INT64_MAX:
        raise ValueError("'count' is outside the signed 64-bit range")
    stamps: dict[str, str | None] = {}
    for stamp in ("created_at", "updated_at", "expires_at"):
        text = doc.get(stamp)
        if text is not None:
            if not isinstance(text, str):
                raise ValueError(f"{stamp!r} is not a string")
            parse_time(text)  # raises ValueError when it is not ISO-8601
        stamps[stamp] = text
    rules = doc.get("rules")
    if rules is not None:
        if not isinstance(rules, dict):
            raise ValueError("'rules' is not an object")
        rules = Rules.load(json.dumps(rules))  # raises ValueError (InvalidInputError) when wrong
    admin_key_hash = doc.get("admin_key_hash")
    if admin_key_hash is not None and not isinstance(admin_key_hash, str):
        raise ValueError("'admin_key_hash' is not a string")
    extra = {k: v for k, v in doc.items() if k not in _KNOWN}
    return Value(
        count,
        stamps["created_at"],
        stamps["updated_at"],
        extra,
        rules,
        stamps["expires_at"],
        admin_key_hash,
        _version(doc),
    )


def _version(doc: Mapping[str, Any]) -> int:
    """A document's `version`, 1 where it has none (written before versions)."""
    version = doc.get("version", 1)
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise ValueError("'version' is not a positive integer")
    return version


_KNOWN: Final = frozenset(
    {"count", "created_at", "updated_at", "rules", "expires_at", "admin_key_hash", "version"}
)
MAX_VERSION: Final = 2**53  # what every JSON reader holds exactly


# --- Idempotency-Key records ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One `_idempotency` entry: the domain's record, less what the counter's own key holds.

    The counter's name is not stored: the fingerprint covers it, so a record only ever matches a
    request for its own counter. The texts are kept as read, so that writing the table back does
    not re-format a thousand timestamps.
    """

    fingerprint: str
    count: int
    updated_at: str
    expires_at: str
    expires: float  # Unix seconds, parsed from expires_at
    version: int = 1  # of the counter it replays; 1 in a record of before versions

    @staticmethod
    def of(record: IdempotencyRecord, updated_at: str) -> StoredRecord:
        expires_at = format_time(datetime.fromtimestamp(record.expires_at, UTC))
        counter = record.counter
        return StoredRecord(
            record.fingerprint, counter.count, updated_at, expires_at, record.expires_at, counter.version
        )

    def for_counter(self, name: CounterId, created_at: datetime | None) -> IdempotencyRecord:
        counter = Counter(name, self.count, created_at, parse_time(self.updated_at), version=self.version)
        return IdempotencyRecord(self.fingerprint, counter, self.expires)

    def expired(self, now: float) -> bool:
        # Expiry is the domain's rule; the counter does not take part in it.
        return IdempotencyRecord(
            self.fingerprint, Counter(CounterId.default(DEFAULT_COUNTER), self.count), self.expires
        ).expired(now)

    def dump(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "count": self.count,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "version": self.version,
        }


def parse_records(raw: str) -> dict[str, StoredRecord]:
    """The `_idempotency` table, oldest first, or ValueError saying what is wrong with it."""
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise UnreadableError("not a JSON object")
    records: dict[str, StoredRecord] = {}
    for name, item in doc.items():
        if not isinstance(item, dict):
            raise UnreadableError(f"record {name!r} is not an object")
        fingerprint, count = item.get("fingerprint"), item.get("count")
        updated_at, expires_at = item.get("updated_at"), item.get("expires_at")
        if not (
            isinstance(fingerprint, str)
            and type(count) is int
            and isinstance(updated_at, str)
            and isinstance(expires_at, str)
        ):
            raise ValueError(f"record {name!r} is malformed")
        parse_time(updated_at)  # raises ValueError when it is not ISO-8601
        expires = parse_time(expires_at).timestamp()
        version = _version(item)
        if _SHA256_HEX.fullmatch(name) and _SHA256_HEX.fullmatch(fingerprint):
            records[name] = StoredRecord(fingerprint, count, updated_at, expires_at, expires, version)
    return records


def dump_records(records: Mapping[str, StoredRecord]) -> str:
    return json.dumps({k: r.dump() for k, r in records.items()}, separators=(",", ":"))


# --- the whole ConfigMap ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The ConfigMap as read (or as returned by our own write). `version` None: it is missing."""

    version: str | None
    data: Mapping[str, str]
    has_data: bool
    writers: Mapping[str, int]  # each writer's last write sequence number in `_writers`
    written: Mapping[str, float] = field(default_factory=dict)  # and when it wrote (Unix seconds)


MISSING: Final = Snapshot(version=None, data={}, has_data=False, writers={})
# Our write was applied but its answer could not be read: nothing to build on, read again.
UNREAD: Final = Snapshot(version="", data={}, has_data=False, writers={})


def snapshot_from(obj: Any) -> Snapshot:
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise UnreadableError("the answer is not a ConfigMap")
    version = obj["metadata"].get("resourceVersion")
    data = obj.get("data")
    if not isinstance(version, str) or not isinstance(data, dict | None):
        raise UnreadableError("the answer is not a ConfigMap")
    data = data or {}
    writers: dict[str, int] = {}
    written: dict[str, float] = {}
    raw_writers = data.get(WRITERS_KEY)
    if isinstance(raw_writers, str):
        with contextlib.suppress(ValueError):
            doc = loads(raw_writers)
            if isinstance(doc, dict):
                for k, v in doc.items():
                    if isinstance(v, list) and len(v) == 2 and type(v[0]) is int:  # noqa: PLR2004
                        writers[k] = v[0]
                        if isinstance(v[1], int | float) and not isinstance(v[1], bool):
                            written[k] = float(v[1])
    return Snapshot(
        version=version, data=data, has_data=obj.get("data") is not None, writers=writers, written=written
    )


def writers_value(snapshot: Snapshot, writer: str, seq: int) -> str:
    """`_writers` with `writer`'s entry set to `seq`, stale and surplus writers dropped."""
    now = time.time()
    entries: dict[str, list[float]] = {}
    raw = snapshot.data.get(WRITERS_KEY)
    if raw is not None:
        with contextlib.suppress(ValueError):
            doc = loads(raw)
            if isinstance(doc, dict):
                # Only entries of the shape this store writes, so that `_writers` stays as small
                # as room.WRITERS_BYTES counts it.
                entries = {
                    k: v
                    for k, v in doc.items()
                    if len(k) <= MAX_WRITER_ID
                    and isinstance(v, list)
                    and len(v) == 2  # noqa: PLR2004
                    and type(v[0]) is int
                    and 0 <= v[0] <= INT64_MAX
                    and isinstance(v[1], int | float)
                    and now - v[1] < WRITER_TTL_SECONDS
                    and v[1] < _MAX_UNIX_TIME
                }
    entries.pop(writer, None)
    entries[writer] = [seq, int(now)]
    if len(entries) > MAX_WRITERS:
        entries = dict(sorted(entries.items(), key=lambda item: item[1][1])[-MAX_WRITERS:])
    return json.dumps(entries, separators=(",", ":"))


class Codec:
    """Reads one ConfigMap's keys into values, in errors that name the ConfigMap and the key."""

    def __init__(self, namespace: str, name: str) -> None:
        self.where = f"ConfigMap {namespace}/{name}"
        # The table is the same text across most reads; parse it once.
        self._records_cache: tuple[str, dict[str, StoredRecord]] | None = None
        # Footprints by resourceVersion: the last few states of the ConfigMap.
        self._footprints: dict[str, Footprint] = {}

    def value(self, data: Mapping[str, str], name: str) -> Value | None:
        raw = data.get(name)
        if raw is None:
            return None
        try:
            return parse_value(raw)
        except ValueError as error:
            raise StoreCorruptedError(
                f"{self.where} key {name!r} is unreadable ({error}); it was"
                ' left unchanged: fix it to {"count": N} with kubectl edit'
            ) from None

    def records(self, data: Mapping[str, str]) -> dict[str, StoredRecord]:
        raw = data.get(IDEMPOTENCY_KEY)
        if raw is None:
            return {}
        if self._records_cache is not None and self._records_cache[0] == raw:
            return self._records_cache[1]
        try:
            records = parse_records(raw)
        except ValueError as error:
            raise StoreCorruptedError(
                f"{self.where} key {IDEMPOTENCY_KEY!r} is unreadable ({error});"
                " it was left unchanged: remove the key to reset Idempotency-Keys"
            ) from None
        self._records_cache = (raw, records)
        return records

    def records_value(
        self, records: dict[str, StoredRecord] | None, data: Mapping[str, str], now: float, *, changed: bool
    ) -> str | None:
        """The new `_idempotency` value, or None to leave it as it is.

        `records`: the table as the batch left it (None: as stored). Expired records are dropped;
        live ones are all kept: a key forgotten before its TTL would count again.
        """
        try:
            stored = self.records(data)
        except StoreCorruptedError:
            return None  # never overwrite what we cannot read
        live = {k: r for k, r in (stored if records is None else records).items() if not r.expired(now)}
        if not changed and live.keys() == stored.keys():
            return None
        text = dump_records(live)
        self._records_cache = (text, live)
        return text

    def footprint(self, snapshot: Snapshot) -> Footprint:
        """What `snapshot`'s data takes of the room (room.Footprint), computed once per version."""
        known = self._footprints.get(snapshot.version or "")
        if known is None:
            known = Footprint.of(snapshot.data, WRITERS_KEY)
            self.remember(snapshot, known)
        return known

    def remember(self, snapshot: Snapshot, footprint: Footprint) -> None:
        if not snapshot.version:
            return  # missing or unread: nothing to look up later
        if len(self._footprints) >= 4:  # noqa: PLR2004 - the base of a batch, its result, a spare
            del self._footprints[next(iter(self._footprints))]
        self._footprints[snapshot.version] = footprint
