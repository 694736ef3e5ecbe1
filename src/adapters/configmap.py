"""Counters in one Kubernetes ConfigMap, written with compare-and-swap and group commit.

Format (readable with `kubectl get configmap NAME -o yaml`): each counter is one data key, the
counter name, whose value is the JSON document `{"count": N, "created_at": ..., "updated_at": ...}`.
Two reserved keys start with `_`, which no counter name can: `_idempotency` (hashed
Idempotency-Keys and their recorded results) and `_writers` (the last write sequence number of
each writer, which lets a writer recognise its own write after a timeout).

Every write is a JSON patch whose first operation tests `metadata.resourceVersion` against the
version that was read, so a write based on a stale read fails (422) and is retried on a fresh
read. While one write is in flight, further operations queue up and go into the next write
together (group commit); each caller still gets its own result, as if applied one by one.

A write whose answer never came (a timeout, a dropped connection, a 504) may or may not have been
applied. The store re-reads: if `_writers` shows the write's sequence number, it was applied and
its results are returned; if the resourceVersion moved on without it, it was not and never will be;
if nothing changed, the next write (with the same resourceVersion precondition) fences it off.
So even that case is answered exactly; only when the API stays unreachable past the retry bounds
is the outcome reported as unknown (StoreUnavailableError saying so).

Limits: the `_idempotency` table keeps at most 1000 records and 256 KiB by default, dropping the
oldest first; a key dropped before its TTL would count again. New counters are refused (503) once
the data nears the 1 MiB ConfigMap limit. `coalesce=False` (one read and one write per operation)
is the naive baseline for benchmarks: under contention it needs far more tries than the bounds
allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Final, Literal, TypedDict, TypeVar, Unpack

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from domain.errors import (
    DomainError,
    IdempotencyKeyReusedError,
    InvalidCounterNameError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import (
    INT64_MAX,
    INT64_MIN,
    Counter,
    Incremented,
    Page,
    Replaced,
    add_checked,
    check_name,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY: Final = "_idempotency"
WRITERS_KEY: Final = "_writers"
FIELD_MANAGER: Final = "counter-web-server"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# A ConfigMap holds at most 1 MiB; refuse to create counters well before the API would refuse.
MAX_DATA_BYTES: Final = 900 * 1024
# A writer's entry in `_writers` is only needed for the seconds between a write and its check;
# keep it an hour and at most this many writers, most recent first.
WRITER_TTL_SECONDS: Final = 3600.0
MAX_WRITERS: Final = 256
# Trust the state returned by our own last write only when nobody else wrote recently.
CACHE_DISTRUST_SECONDS: Final = 1.0
SETTLE_TRIES: Final = 4

_T = TypeVar("_T")


# --- values -----------------------------------------------------------------------------------


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _UnreadableError(ValueError):
    """Stored or received text that does not have the expected shape."""


def _reject_constant(token: str) -> Any:
    raise _UnreadableError(f"{token} is not JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


@dataclass(frozen=True, slots=True)
class _Value:
    """One counter's stored document. Unknown fields are kept as they were."""

    count: int
    created_at: str | None
    updated_at: str | None
    extra: Mapping[str, Any]

    def counter(self, name: str) -> Counter:
        return Counter(
            name=name,
            count=self.count,
            created_at=None if self.created_at is None else _parse_time(self.created_at),
            updated_at=None if self.updated_at is None else _parse_time(self.updated_at),
        )

    def dump(self) -> str:
        doc: dict[str, Any] = {"count": self.count}
        if self.created_at is not None:
            doc["created_at"] = self.created_at
        if self.updated_at is not None:
            doc["updated_at"] = self.updated_at
        doc.update(self.extra)
        return json.dumps(doc)


def _parse_value(raw: str) -> _Value:
    """The stored document, or ValueError saying what is wrong with it."""
    doc = _loads(raw)
    if not isinstance(doc, dict):
        raise _UnreadableError("not a JSON object")
    count = doc.get("count")
    if type(count) is not int:
        raise ValueError("'count' is not an integer")
    if not INT64_MIN <= count <= INT64_MAX:
        raise ValueError("'count' is outside the signed 64-bit range")
    stamps: dict[str, str | None] = {}
    for stamp in ("created_at", "updated_at"):
        text = doc.get(stamp)
        if text is not None:
            if not isinstance(text, str):
                raise ValueError(f"{stamp!r} is not a string")
            _parse_time(text)  # raises ValueError when it is not ISO-8601
        stamps[stamp] = text
    extra = {k: v for k, v in doc.items() if k not in {"count", "created_at", "updated_at"}}
    return _Value(count, stamps["created_at"], stamps["updated_at"], extra)


@dataclass(frozen=True, slots=True)
class _Record:
    """What an Idempotency-Key did: the request's fingerprint and the count it produced."""

    fingerprint: str
    count: int
    updated_at: str
    expires_at: str
    expires: float  # epoch seconds, parsed from expires_at

    def dump(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "count": self.count,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
        }


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _parse_records(raw: str) -> dict[str, _Record]:
    doc = _loads(raw)
    if not isinstance(doc, dict):
        raise _UnreadableError("not a JSON object")
    records: dict[str, _Record] = {}
    for hashed, item in doc.items():
        if not isinstance(item, dict):
            raise _UnreadableError(f"record {hashed!r} is not an object")
        fingerprint, count = item.get("fingerprint"), item.get("count")
        updated_at, expires_at = item.get("updated_at"), item.get("expires_at")
        if not (
            isinstance(fingerprint, str)
            and type(count) is int
            and isinstance(updated_at, str)
            and isinstance(expires_at, str)
        ):
            raise ValueError(f"record {hashed!r} is malformed")
        records[hashed] = _Record(
            fingerprint, count, updated_at, expires_at, _parse_time(expires_at).timestamp()
        )
    return records


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The ConfigMap as read (or as returned by our own write). `version` None: it is missing."""

    version: str | None
    data: Mapping[str, str]
    has_data: bool
    writers: Mapping[str, int]


def _snapshot_from(obj: Any) -> _Snapshot:
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise _UnreadableError("the answer is not a ConfigMap")
    version = obj["metadata"].get("resourceVersion")
    data = obj.get("data")
    if not isinstance(version, str) or not isinstance(data, dict | None):
        raise _UnreadableError("the answer is not a ConfigMap")
    data = data or {}
    writers: dict[str, int] = {}
    raw_writers = data.get(WRITERS_KEY)
    if isinstance(raw_writers, str):
        with contextlib.suppress(ValueError):
            doc = _loads(raw_writers)
            if isinstance(doc, dict):
                writers = {
                    k: v[0]
                    for k, v in doc.items()
                    if isinstance(v, list) and len(v) == 2 and type(v[0]) is int  # noqa: PLR2004
                }
    return _Snapshot(version=version, data=data, has_data=obj.get("data") is not None, writers=writers)


_MISSING: Final = _Snapshot(version=None, data={}, has_data=False, writers={})


# --- API errors -------------------------------------------------------------------------------


class _Kind(Enum):
    CONFLICT = "conflict"  # 409, or 422 from a failed `test`: the version we read is stale
    THROTTLED = "throttled"  # 429: not applied; wait Retry-After
    NOT_FOUND = "not found"
    DENIED = "denied"  # 401, 403: fatal
    INVALID = "invalid"  # other 4xx: fatal
    SERVER = "server error"  # 5xx: a write may or may not have been applied
    UNSENT = "unreachable"  # no connection: nothing was sent
    UNKNOWN = "no answer"  # timeout or broken connection after sending


_TRANSIENT: Final = frozenset({_Kind.THROTTLED, _Kind.SERVER, _Kind.UNSENT, _Kind.UNKNOWN})


class _ApiError(Exception):
    def __init__(
        self, kind: _Kind, detail: str, *, status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _status_message(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        doc = json.loads(exc.body or "")
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return str(doc["message"])
    return str(exc.reason or "")


def _classify(exc: BaseException) -> _ApiError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = f"{status} {_status_message(exc)}".strip()
        if status in {409, 422}:
            kind = _Kind.CONFLICT
        elif status == 429:  # noqa: PLR2004
            return _ApiError(_Kind.THROTTLED, message, status=status, retry_after=_retry_after(exc))
        elif status == 404:  # noqa: PLR2004
            kind = _Kind.NOT_FOUND
        elif status in {401, 403}:
            kind = _Kind.DENIED
        elif status >= 500 or status == 0:  # noqa: PLR2004
            kind = _Kind.SERVER
        else:
            kind = _Kind.INVALID
        return _ApiError(kind, message, status=status)
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return _ApiError(_Kind.UNSENT, f"cannot connect: {exc}")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
        exc.reason, urllib3.exceptions.NewConnectionError
    ):
        # urllib3's own retries (when the client has them) were all connection failures.
        return _ApiError(_Kind.UNSENT, f"cannot connect: {exc.reason}")
    return _ApiError(_Kind.UNKNOWN, f"{type(exc).__name__}: {exc}")


# --- operations -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Op:
    kind: Literal["increment", "set", "delete"]
    name: str
    amount: int
    idempotency: Idempotency | None
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Attempt:
    """A write whose outcome we have not seen: `outcomes` None marks a fence (no operations).

    `pending`: it may still reach the store later (no answer, or a 504 from the apiserver's
    timeout filter, which answers while the storage write goes on); after any other answer, a
    re-read that does not show it proves it was not applied.
    """

    base_version: str | None
    outcomes: _Outcomes | None
    pending: bool


@dataclass(slots=True)
class _Plan:
    """The operations applied in memory to one snapshot: what to write and what each op returns."""

    outcomes: _Outcomes
    changes: dict[str, str | None]  # key -> new value, None to remove
    must_write: bool


class _Batch:
    """Operations applied in order to one snapshot, in memory; each gets its own outcome."""

    def __init__(
        self,
        snapshot: _Snapshot,
        read_value: Callable[[Mapping[str, str], str], _Value | None],
        read_records: Callable[[Mapping[str, str]], dict[str, _Record]],
        full_error: Callable[[], StoreUnavailableError],
    ) -> None:
        self._snapshot = snapshot
        self._read_value = read_value
        self._read_records = read_records
        self._full_error = full_error
        self.now = datetime.now(UTC)
        self._stamp = _format_time(self.now)
        self._values: dict[str, _Value | None] = {}
        self._changes: dict[str, str | None] = {}
        self._size: int | None = None
        self.records: dict[str, _Record] | None = None
        self.records_changed = False

    def apply(self, op: _Op) -> Any:
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
            record = self._table().get(_hash_key(idem.key))
            if record is not None and record.expires > self.now.timestamp():
                if record.fingerprint != idem.fingerprint[:32]:
                    raise IdempotencyKeyReusedError(
                        "this Idempotency-Key was first used with a different request"
                    )
                return self._replay(name, record)
        old = self._current(name)
        count = add_checked(name, 0 if old is None else old.count, by)
        new = self._store(name, old, count)
        if idem is not None:
            expires = datetime.fromtimestamp(self.now.timestamp() + idem.ttl_seconds, UTC)
            table = self._table()
            hashed = _hash_key(idem.key)
            table.pop(hashed, None)  # re-inserted last, so that the table stays oldest first
            table[hashed] = _Record(
                idem.fingerprint[:32], count, self._stamp, _format_time(expires), expires.timestamp()
            )
            self.records_changed = True
        return Incremented(counter=new.counter(name))

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

    def _current(self, name: str) -> _Value | None:
        if name not in self._values:
            self._values[name] = self._read_value(self._snapshot.data, name)
        return self._values[name]

    def _store(self, name: str, old: _Value | None, count: int) -> _Value:
        if old is None and name not in self._snapshot.data and name not in self._changes:
            if self._size is None:
                self._size = sum(len(k) + len(v) for k, v in self._snapshot.data.items())
            self._size += len(name) + 128
            if self._size > MAX_DATA_BYTES:
                raise self._full_error()
        new = _Value(
            count=count,
            created_at=self._stamp if old is None else old.created_at,
            updated_at=self._stamp,
            extra={} if old is None else old.extra,
        )
        self._values[name] = new
        self._changes[name] = new.dump()
        return new

    def _table(self) -> dict[str, _Record]:
        if self.records is None:
            self.records = dict(self._read_records(self._snapshot.data))
        return self.records

    def _replay(self, name: str, record: _Record) -> Incremented:
        created: datetime | None = None
        with contextlib.suppress(StoreCorruptedError):
            value = self._current(name)
            if value is not None and value.created_at is not None:
                created = _parse_time(value.created_at)
        counter = Counter(
            name=name, count=record.count, created_at=created, updated_at=_parse_time(record.updated_at)
        )
        return Incremented(counter=counter, replayed=True)


_Ops = list[_Op]
_Outcomes = list[Any]


@dataclass(slots=True)
class _Bounds:
    max_tries: int
    deadline: float
    tries: int = 0
    retry_after: float = 1.0
    last_error: str = ""

    def exhausted(self, wait: float = 0.0) -> bool:
        return self.tries >= self.max_tries or time.monotonic() + wait > self.deadline


@dataclass(slots=True)
class _CommitState:
    bounds: _Bounds
    use_cache: bool
    snapshot: _Snapshot | None = None
    from_cache: bool = False
    settling: bool = False  # past the bounds with unconfirmed writes: only fence, then fail
    unresolved: dict[int, _Attempt] = field(default_factory=dict)


@dataclass(slots=True)
class ConfigMapStats:
    api_reads: int = 0
    api_writes: int = 0
    conflicts: int = 0
    throttled: int = 0
    transient_errors: int = 0
    batches: int = 0
    operations: int = 0
    timeouts_resolved: int = 0
    outcomes_unknown: int = 0


DEFAULT_THREADS: Final = 8


class ConfigMapCounterRepository:
    """Counters in one ConfigMap. Blocking client calls run in a small dedicated thread pool.

    With `coalesce=True` (the default) one writer task per repository applies queued operations in
    batches of up to `max_batch`, one compare-and-swap write per batch; with `coalesce=False`
    every operation reads and writes on its own (the naive baseline). Conflicts, 429, 5xx and
    timeouts are retried with jittered exponential backoff within `max_attempts` tries and
    `max_retry_seconds`; past that the operations fail with StoreUnavailableError and were not
    counted (a write whose outcome is unknown is settled by re-reading before giving up).
    """

    def __init__(
        self,
        api: Any,
        name: str,
        namespace: str,
        *,
        coalesce: bool = True,
        max_batch: int = 512,
        max_attempts: int = 10,
        max_retry_seconds: float = 10.0,
        request_timeout: float = 5.0,
        threads: int = DEFAULT_THREADS,
        max_idempotency_records: int = 1000,
        max_idempotency_bytes: int = 256 * 1024,
    ) -> None:
        if max_batch < 1 or max_attempts < 1 or threads < 1:
            raise ValueError("max_batch, max_attempts and threads must be at least 1")
        self._api = api
        self.name = name
        self.namespace = namespace
        self.coalesce = coalesce
        self._max_batch = max_batch
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._timeout = request_timeout
        self._max_records = max_idempotency_records
        self._max_record_bytes = max_idempotency_bytes
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"configmap-{name}")
        self._id = secrets.token_hex(6)  # this instance's name in `_writers`
        self._seq = itertools.count(1)
        self._free_slots: list[int] = []
        self._slots = itertools.count(1)
        self._pending: deque[_Op] = deque()
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._read_running: asyncio.Future[_Snapshot] | None = None
        self._read_next: asyncio.Future[_Snapshot] | None = None
        self._cache: _Snapshot | None = None
        self._last_conflict = -CACHE_DISTRUST_SECONDS
        self._records_cache: tuple[str, dict[str, _Record]] | None = None
        self._closed = False
        self.stats = ConfigMapStats()

    # --- counters that tests and benchmarks read ------------------------------------------------

    @property
    def api_writes(self) -> int:
        return self.stats.api_writes

    @property
    def api_reads(self) -> int:
        return self.stats.api_reads

    @property
    def conflicts(self) -> int:
        return self.stats.conflicts

    # --- the port -------------------------------------------------------------------------------

    async def get(self, name: str) -> Counter:
        snapshot = await self._read_shared()
        value = self._value(snapshot.data, name)
        return Counter(name=name, count=0) if value is None else value.counter(name)

    async def increment(self, name: str, by: int, idempotency: Idempotency | None = None) -> Incremented:
        result: Incremented = await self._submit("increment", name, by, idempotency)
        return result

    async def set(self, name: str, count: int) -> Replaced:
        result: Replaced = await self._submit("set", name, count, None)
        return result

    async def delete(self, name: str) -> Counter | None:
        result: Counter | None = await self._submit("delete", name, 0, None)
        return result

    async def list(self, after: str | None, limit: int) -> Page:
        snapshot = await self._read_shared()
        names = sorted(k for k in snapshot.data if _is_counter_name(k) and (after is None or k > after))
        chosen = names[:limit]
        counters = []
        for name in chosen:
            value = self._value(snapshot.data, name)
            if value is not None:
                counters.append(value.counter(name))
        more = len(names) > limit
        return Page(counters=counters, next_after=chosen[-1] if more and chosen else None)

    async def ping(self) -> None:
        self.stats.api_reads += 1
        try:
            await self._call(self._get_once)
        except _ApiError as error:
            if error.kind is not _Kind.NOT_FOUND:  # a missing ConfigMap is created on the first write
                raise self._unavailable(error, "get") from None

    async def aclose(self) -> None:
        """Stop the writer, fail what is still queued, release the threads."""
        if self._closed:
            return
        self._closed = True
        for task in [*self._tasks, *([self._writer] if self._writer else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._writer] if self._writer else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        closed = StoreUnavailableError("the ConfigMap store is closed")
        while self._pending:
            op = self._pending.popleft()
            if not op.future.done():
                op.future.set_exception(closed)
        for future in (self._read_running, self._read_next):
            if future is not None and not future.done():
                future.cancel()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    # --- submitting operations ------------------------------------------------------------------

    async def _submit(
        self, kind: Literal["increment", "set", "delete"], name: str, amount: int, idem: Idempotency | None
    ) -> Any:
        if self._closed:
            raise StoreUnavailableError("the ConfigMap store is closed")
        loop = asyncio.get_running_loop()
        op = _Op(kind, name, amount, idem, loop.create_future())
        if not self.coalesce:
            slot = self._free_slots.pop() if self._free_slots else next(self._slots)
            try:
                await self._commit([op], f"{self._id}.{slot}", use_cache=False)
            finally:
                self._free_slots.append(slot)
            return op.future.result()
        self._pending.append(op)
        if self._writer is None:
            self._wakeup = asyncio.Event()
            self._writer = loop.create_task(self._write_loop())
        assert self._wakeup is not None
        self._wakeup.set()
        return await op.future

    async def _write_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch: list[_Op] = []
                while self._pending and len(batch) < self._max_batch:
                    op = self._pending.popleft()
                    if not op.future.done():  # a caller cancelled before its turn: not applied
                        batch.append(op)
                if batch:
                    await self._commit(batch, self._id, use_cache=True)

    # --- one batch: read, apply in memory, compare-and-swap, retry -------------------------------

    async def _commit(self, ops: _Ops, writer: str, *, use_cache: bool) -> None:
        """Apply `ops` in one write and resolve every op's future; never raises."""
        self.stats.batches += 1
        self.stats.operations += len(ops)
        try:
            outcomes = await self._commit_outcomes(ops, writer, use_cache=use_cache)
        except asyncio.CancelledError:
            closed = StoreUnavailableError(
                "the ConfigMap store was closed during the write; the outcome is unknown"
            )
            for op in ops:
                if not op.future.done():
                    op.future.add_done_callback(_consume)
                    op.future.set_exception(closed)
            raise
        except DomainError as error:
            outcomes = [error] * len(ops)
        except Exception as error:  # a bug must fail the batch, not kill the writer
            log.exception("configmap_commit_failed", extra={"configmap": self.name})
            outcomes = [StoreUnavailableError(f"the ConfigMap store failed: {type(error).__name__}")] * len(
                ops
            )
        for op, outcome in zip(ops, outcomes, strict=True):
            if op.future.done():
                continue
            if isinstance(outcome, BaseException):
                op.future.set_exception(outcome)
            else:
                op.future.set_result(outcome)

    async def _commit_outcomes(self, ops: _Ops, writer: str, *, use_cache: bool) -> _Outcomes:
        state = _CommitState(
            bounds=_Bounds(self._max_attempts, time.monotonic() + self._max_retry_seconds),
            use_cache=use_cache,
        )
        if use_cache and time.monotonic() - self._last_conflict > CACHE_DISTRUST_SECONDS:
            state.snapshot = self._cache
            state.from_cache = self._cache is not None
        while True:
            if state.snapshot is None:
                await self._read_for_commit(state)
                continue
            settled = self._settle(state, writer)
            if settled is not None:
                return settled
            plan = self._plan([] if state.settling else ops, state.snapshot, force=bool(state.unresolved))
            if not plan.must_write:
                if state.from_cache:  # decisions without a write need a fresh read
                    state.snapshot = None
                    continue
                return plan.outcomes
            written = await self._write_for_commit(state, plan, writer)
            if written is not None:
                return written

    async def _read_for_commit(self, state: _CommitState) -> None:
        try:
            state.snapshot = await self._read()
        except _ApiError as error:
            if error.kind not in _TRANSIENT:
                raise self._failed(error, "get", unresolved=bool(state.unresolved)) from None
            await self._pause(state.bounds, error)
            self._check_bounds(state)
            return
        state.from_cache = False
        if state.use_cache:
            self._cache = state.snapshot

    def _settle(self, state: _CommitState, writer: str) -> _Outcomes | None:
        """Decide the writes whose outcome we did not see, from the snapshot just read."""
        assert state.snapshot is not None
        if not state.unresolved:
            return None
        applied = state.unresolved.get(state.snapshot.writers.get(writer, -1))
        if applied is not None:
            self.stats.timeouts_resolved += 1
            log.info("configmap_unconfirmed_write_was_applied", extra={"configmap": self.name})
            if applied.outcomes is None:  # our fence: no earlier attempt can apply any more
                raise self._not_counted(state.bounds)
            return applied.outcomes
        # Not applied, and never will be when answered, or based on another version (versions
        # match only when equal, and every write changes the version).
        version = state.snapshot.version
        state.unresolved = {
            s: a for s, a in state.unresolved.items() if a.pending and a.base_version == version
        }
        if state.settling and not state.unresolved:
            raise self._not_counted(state.bounds)
        return None

    async def _write_for_commit(self, state: _CommitState, plan: _Plan, writer: str) -> _Outcomes | None:
        """One compare-and-swap write: the outcomes when it was applied, None to go round again."""
        assert state.snapshot is not None
        seq = next(self._seq)
        base = state.snapshot
        try:
            state.snapshot = await self._write(base, plan, writer, seq)
        except _ApiError as error:
            if error.kind in {_Kind.SERVER, _Kind.UNKNOWN}:
                # Maybe applied, or still to be applied if the request reaches the server late.
                state.unresolved[seq] = _Attempt(
                    base.version,
                    None if state.settling else plan.outcomes,
                    pending=error.kind is _Kind.UNKNOWN or error.status == 504,  # noqa: PLR2004
                )
            state.snapshot = await self._after_failed_write(
                error, base, state.bounds, unresolved=bool(state.unresolved)
            )
            self._check_bounds(state)
            return None
        if state.use_cache:
            self._cache = state.snapshot if state.snapshot.version else None
        if state.settling:
            raise self._not_counted(state.bounds)  # the fence is written: no earlier attempt can apply
        return plan.outcomes

    async def _after_failed_write(
        self, error: _ApiError, snapshot: _Snapshot, bounds: _Bounds, *, unresolved: bool
    ) -> _Snapshot | None:
        """Account for a failed write and wait; return the snapshot to retry on (None: read again)."""
        verb = "create" if snapshot.version is None else "patch"
        if error.kind is _Kind.NOT_FOUND and snapshot.version is None:
            raise self._failed(error, verb, unresolved=unresolved)  # the namespace is missing
        if error.kind in {_Kind.CONFLICT, _Kind.NOT_FOUND}:  # NOT_FOUND: deleted since the read
            self.stats.conflicts += 1
            self._last_conflict = time.monotonic()
            bounds.tries += 1
            bounds.last_error = error.detail
            await self._sleep(bounds, _backoff(bounds.tries))
            return None
        if error.kind not in _TRANSIENT:
            raise self._failed(error, verb, unresolved=unresolved)
        await self._pause(bounds, error)
        # After 429 or no connection nothing was applied: the snapshot is still worth a try.
        return None if error.kind in {_Kind.SERVER, _Kind.UNKNOWN} else snapshot

    def _check_bounds(self, state: _CommitState) -> None:
        """At the bounds: raise, or first settle the writes whose outcome is unknown."""
        bounds = state.bounds
        if not bounds.exhausted():
            return
        if state.unresolved and not state.settling:
            # Reads and a fence write get a few more tries of their own to settle the outcome.
            state.settling = True
            bounds.max_tries = bounds.tries + SETTLE_TRIES
            bounds.deadline = time.monotonic() + 2 * self._timeout + 1.0
            return
        if state.unresolved:
            self.stats.outcomes_unknown += 1
            log.warning("configmap_write_outcome_unknown", extra={"configmap": self.name})
            raise StoreUnavailableError(
                f"the Kubernetes API did not confirm the write to ConfigMap {self.namespace}/{self.name}"
                f" ({bounds.last_error}); the outcome is unknown: retry with the same Idempotency-Key",
                retry_after=max(1, round(bounds.retry_after)),
            )
        raise self._not_counted(bounds)

    def _not_counted(self, bounds: _Bounds) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"the Kubernetes API did not accept the write to ConfigMap {self.namespace}/{self.name}"
            f" after {bounds.tries} tries ({bounds.last_error or 'no answer'}); nothing was counted",
            retry_after=max(1, round(bounds.retry_after)),
        )

    async def _pause(self, bounds: _Bounds, error: _ApiError) -> None:
        bounds.tries += 1
        bounds.last_error = error.detail
        if error.kind is _Kind.THROTTLED:
            self.stats.throttled += 1
            wait = error.retry_after if error.retry_after is not None else 1.0
            bounds.retry_after = max(bounds.retry_after, wait)
            if bounds.exhausted(wait):
                bounds.tries = bounds.max_tries  # waiting as asked would pass the deadline
                return
            await asyncio.sleep(wait)
            return
        self.stats.transient_errors += 1
        await self._sleep(bounds, _backoff(bounds.tries))

    @staticmethod
    async def _sleep(bounds: _Bounds, delay: float) -> None:
        await asyncio.sleep(max(0.0, min(delay, bounds.deadline - time.monotonic())))

    # --- applying a batch in memory -------------------------------------------------------------

    def _plan(self, ops: _Ops, snapshot: _Snapshot, *, force: bool) -> _Plan:
        batch = _Batch(snapshot, self._value, self._records, self._full_error)
        outcomes = [batch.apply(op) for op in ops]
        changes = batch.changes()
        must_write = bool(changes) or batch.records_changed or force
        if must_write:
            dumped = self._dump_records(
                batch.records, snapshot.data, batch.now.timestamp(), changed=batch.records_changed
            )
            if dumped is not None:
                changes[IDEMPOTENCY_KEY] = dumped
        return _Plan(outcomes=outcomes, changes=changes, must_write=must_write)

    def _full_error(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"ConfigMap {self.namespace}/{self.name} is full (about 1 MiB): delete counters or use"
            " another store",
            retry_after=60,
        )

    def _value(self, data: Mapping[str, str], name: str) -> _Value | None:
        raw = data.get(name)
        if raw is None:
            return None
        try:
            return _parse_value(raw)
        except ValueError as error:
            raise StoreCorruptedError(
                f"ConfigMap {self.namespace}/{self.name} key {name!r} is unreadable ({error}); it was"
                ' left unchanged: fix it to {"count": N} with kubectl edit'
            ) from None

    def _records(self, data: Mapping[str, str]) -> dict[str, _Record]:
        raw = data.get(IDEMPOTENCY_KEY)
        if raw is None:
            return {}
        if self._records_cache is not None and self._records_cache[0] == raw:
            return self._records_cache[1]
        try:
            records = _parse_records(raw)
        except ValueError as error:
            raise StoreCorruptedError(
                f"ConfigMap {self.namespace}/{self.name} key {IDEMPOTENCY_KEY!r} is unreadable ({error});"
                " it was left unchanged: remove the key to reset Idempotency-Keys"
            ) from None
        self._records_cache = (raw, records)
        return records

    def _dump_records(
        self, records: dict[str, _Record] | None, data: Mapping[str, str], now: float, *, changed: bool
    ) -> str | None:
        """The new `_idempotency` value, or None to leave it as it is."""
        if records is None:
            try:
                records = dict(self._records(data))
            except StoreCorruptedError:
                return None  # never overwrite what we cannot read
        live = {k: r for k, r in records.items() if r.expires > now}
        if not changed and len(live) == len(records):
            return None
        # Oldest first: a key evicted before its TTL would count again, so the bounds are generous.
        excess = len(live) - self._max_records
        keys = list(live)
        for key in keys[: max(0, excess)]:
            del live[key]
        text = json.dumps({k: r.dump() for k, r in live.items()}, separators=(",", ":"))
        while len(text) > self._max_record_bytes and live:
            for key in list(live)[: max(1, len(live) // 10)]:
                del live[key]
            text = json.dumps({k: r.dump() for k, r in live.items()}, separators=(",", ":"))
        self._records_cache = (text, live)
        return text

    def _writers_value(self, snapshot: _Snapshot, writer: str, seq: int) -> str:
        now = time.time()
        entries: dict[str, list[float]] = {}
        raw = snapshot.data.get(WRITERS_KEY)
        if raw is not None:
            with contextlib.suppress(ValueError):
                doc = _loads(raw)
                if isinstance(doc, dict):
                    entries = {
                        k: v
                        for k, v in doc.items()
                        if isinstance(v, list)
                        and len(v) == 2  # noqa: PLR2004
                        and isinstance(v[1], int | float)
                        and now - v[1] < WRITER_TTL_SECONDS
                    }
        entries.pop(writer, None)
        entries[writer] = [seq, int(now)]
        if len(entries) > MAX_WRITERS:
            entries = dict(sorted(entries.items(), key=lambda item: item[1][1])[-MAX_WRITERS:])
        return json.dumps(entries, separators=(",", ":"))

    # --- API calls (each runs in the thread pool) -----------------------------------------------

    async def _call(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise _ApiError(_Kind.INVALID, "the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except _ApiError:
            raise
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise _classify(error) from None
        except ValueError as error:  # an answer that is not JSON
            raise _ApiError(_Kind.SERVER, f"unreadable answer: {error}") from None
        except RuntimeError as error:  # the executor was shut down
            raise _ApiError(_Kind.UNSENT, str(error)) from None

    async def _read(self) -> _Snapshot:
        self.stats.api_reads += 1
        return await self._call(self._read_snapshot)

    def _get_once(self) -> Any:
        response = self._api.read_namespaced_config_map(
            self.name, self.namespace, _preload_content=False, _request_timeout=self._timeout
        )
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def _read_snapshot(self) -> _Snapshot:
        try:
            obj = self._get_once()
        except ApiException as error:
            if error.status == 404:  # noqa: PLR2004
                return _MISSING
            raise
        try:
            return _snapshot_from(obj)
        except ValueError as error:
            raise _ApiError(_Kind.SERVER, str(error)) from None

    async def _write(self, snapshot: _Snapshot, plan: _Plan, writer: str, seq: int) -> _Snapshot:
        writers = self._writers_value(snapshot, writer, seq)
        self.stats.api_writes += 1
        if snapshot.version is None:
            data = {k: v for k, v in plan.changes.items() if v is not None}
            data[WRITERS_KEY] = writers
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "data": data,
            }
            call = functools.partial(
                self._api.create_namespaced_config_map,
                self.namespace,
                body,
                field_manager=FIELD_MANAGER,
            )
        else:
            patch: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": snapshot.version}
            ]
            if not snapshot.has_data:
                patch.append({"op": "add", "path": "/data", "value": {}})
            for key, value in plan.changes.items():
                path = "/data/" + key.replace("~", "~0").replace("/", "~1")
                if value is None:
                    patch.append({"op": "remove", "path": path})
                else:
                    patch.append({"op": "add", "path": path, "value": value})
            patch.append({"op": "add", "path": f"/data/{WRITERS_KEY}", "value": writers})
            call = functools.partial(
                self._api.patch_namespaced_config_map,
                self.name,
                self.namespace,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type="application/json-patch+json",
            )

        def send() -> _Snapshot:
            response = call(_preload_content=False, _request_timeout=self._timeout)
            try:
                obj = json.loads(response.data)
            finally:
                response.release_conn()
            try:
                return _snapshot_from(obj)
            except ValueError:
                # Applied, but the answer is unreadable: the next batch reads again.
                return _Snapshot(version="", data={}, has_data=False, writers={})

        return await self._call(send)

    # --- shared reads ---------------------------------------------------------------------------

    async def _read_shared(self) -> _Snapshot:
        """A snapshot read after this call began; concurrent callers share one GET."""
        if self._closed:
            raise StoreUnavailableError("the ConfigMap store is closed")
        loop = asyncio.get_running_loop()
        if self._read_running is None:
            future: asyncio.Future[_Snapshot] = loop.create_future()
            self._read_running = future
            task = loop.create_task(self._run_reads(future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            # The read in flight may have started before this call: wait for the next one.
            if self._read_next is None:
                self._read_next = loop.create_future()
            future = self._read_next
        try:
            return await asyncio.shield(future)
        except StoreUnavailableError as error:
            raise StoreUnavailableError(str(error), retry_after=error.retry_after) from None

    async def _run_reads(self, future: asyncio.Future[_Snapshot] | None) -> None:
        while future is not None:
            future.add_done_callback(_consume)
            try:
                snapshot = await self._read_with_retries()
            except asyncio.CancelledError:
                future.cancel()
                raise
            except StoreUnavailableError as error:
                future.set_exception(error)
            except Exception as error:  # a bug must not leave readers waiting forever
                log.exception("configmap_read_failed", extra={"configmap": self.name})
                future.set_exception(
                    StoreUnavailableError(f"the ConfigMap store failed: {type(error).__name__}")
                )
            else:
                future.set_result(snapshot)
            future, self._read_next = self._read_next, None
            self._read_running = future

    async def _read_with_retries(self) -> _Snapshot:
        bounds = _Bounds(self._max_attempts, time.monotonic() + self._max_retry_seconds)
        while True:
            try:
                return await self._read()
            except _ApiError as error:
                if error.kind not in _TRANSIENT:
                    raise self._unavailable(error, "get") from None
                await self._pause(bounds, error)
                if bounds.exhausted():
                    raise self._unavailable(error, "get", retry_after=bounds.retry_after) from None

    # --- errors in the words of the domain ------------------------------------------------------

    def _unavailable(self, error: _ApiError, verb: str, *, retry_after: float = 1.0) -> StoreUnavailableError:
        where = f"ConfigMap {self.namespace}/{self.name}"
        if error.kind is _Kind.DENIED:
            if error.status == 401:  # noqa: PLR2004
                message = f"the Kubernetes API refused the credentials ({error.detail})"
            else:
                message = (
                    f"the service account may not {verb} configmaps in namespace {self.namespace}"
                    f" ({error.detail}): grant the RBAC verbs get, create and patch on configmaps"
                )
        elif error.kind is _Kind.NOT_FOUND:
            message = f"cannot create {where}: namespace {self.namespace!r} not found ({error.detail})"
        elif error.kind is _Kind.UNSENT:
            message = f"the Kubernetes API cannot be reached for {where} ({error.detail})"
        else:
            message = f"the Kubernetes API failed on {where} ({error.detail})"
        return StoreUnavailableError(message, retry_after=max(1, round(retry_after)))

    def _failed(self, error: _ApiError, verb: str, *, unresolved: bool) -> StoreUnavailableError:
        failure = self._unavailable(error, verb)
        if unresolved:
            self.stats.outcomes_unknown += 1
            return StoreUnavailableError(
                f"{failure}; an earlier write was not confirmed, so the outcome is unknown:"
                " retry with the same Idempotency-Key",
                retry_after=failure.retry_after,
            )
        return failure


def _backoff(tries: int) -> float:
    """Full jitter: a random delay up to 10 ms * 2^tries, capped at 1 s."""
    return random.uniform(0.0, min(1.0, 0.01 * 2 ** min(tries, 10)))  # noqa: S311 - jitter, not secrets


def _consume(future: asyncio.Future[Any]) -> None:
    # Mark the exception as retrieved: the callers who wanted it may have been cancelled.
    if not future.cancelled():
        future.exception()


def _is_counter_name(key: str) -> bool:
    try:
        check_name(key)
    except InvalidCounterNameError:
        return False
    return True


# --- opening a repository ---------------------------------------------------------------------


def resolve_namespace(namespace: str | None, kubeconfig: str | None = None) -> str:
    """Explicit, else the pod's own (service-account file), else the kubeconfig context's, else default."""
    if namespace:
        return namespace
    with contextlib.suppress(OSError):
        own = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
        if own:
            return own
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        with contextlib.suppress(Exception):
            _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            context_namespace = (active or {}).get("context", {}).get("namespace")
            if isinstance(context_namespace, str) and context_namespace:
                return context_namespace
    return "default"


def new_api_client(kubeconfig: str | None = None, *, context: str | None = None, pool_size: int = 8) -> Any:
    """An ApiClient of its own (the global client configuration is left alone): in-cluster inside a
    pod, else the kubeconfig (explicit path, else KUBECONFIG, else ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    # This adapter retries by itself and recognises its own writes; urllib3 retrying a PATCH on its
    # own would only hide what happened.
    configuration.retries = False
    configuration.connection_pool_maxsize = pool_size
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            return k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                persist_config=False,
                client_configuration=configuration,
            )
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as error:
        source = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise StoreUnavailableError(f"cannot load the Kubernetes configuration ({source}): {error}") from None
    return k8s_client.ApiClient(configuration)


class ConfigMapOptions(TypedDict, total=False):
    """The repository's tuning, passed through `open_configmap_repository` unchanged."""

    coalesce: bool
    max_batch: int
    max_attempts: int
    max_retry_seconds: float
    request_timeout: float
    threads: int
    max_idempotency_records: int
    max_idempotency_bytes: int


async def open_configmap_repository(
    name: str,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    **options: Unpack[ConfigMapOptions],
) -> AsyncIterator[ConfigMapCounterRepository]:
    """Resource: a repository on ConfigMap `name`, closed with its client at the end."""
    # One HTTP connection per API thread, so that no thread waits for a connection.
    pool_size = options.get("threads", DEFAULT_THREADS)
    api_client = await asyncio.to_thread(new_api_client, kubeconfig, context=context, pool_size=pool_size)
    try:
        resolved = await asyncio.to_thread(resolve_namespace, namespace, kubeconfig)
        repository = ConfigMapCounterRepository(k8s_client.CoreV1Api(api_client), name, resolved, **options)
        try:
            yield repository
        finally:
            await repository.aclose()
    finally:
        await asyncio.to_thread(api_client.close)
