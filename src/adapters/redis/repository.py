"""RedisCounterRepository: the port on the keys, scripts and pipelines of the other modules.

This module maps domain calls to commands and replies to domain objects; it holds no Lua and
touches no connection. An increment with an Idempotency-Key is decided by the domain: the
increment script either applies it and keeps the record in one atomic step, or, when a record
exists, writes nothing and hands the record back for `decide` to answer (replay or refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from adapters.redis import fields, scripts
from adapters.redis import keys as names
from adapters.redis.batcher import Batcher, UnreachableError
from adapters.redis.connection import (
    Client,
    DedicatedConnection,
    ReplyError,
    configured_timeout,
    new_client,
)
from adapters.redis.protocol import (
    bulk,
    describe,
    microseconds,
    pack,
    parse_int64,
    parse_microseconds,
    parse_time,
)
from domain.errors import (
    CounterExistsError,
    CounterOverflowError,
    InvalidCounterNameError,
    OutcomeUnknownError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import (
    DEFAULT_NAMESPACE,
    NAME_RE,
    Counter,
    CounterId,
    Incremented,
    Page,
    Replaced,
    check_version,
)
from domain.restore import Restored, decide_restore, state_to_restore
from domain.rules import Rules

DEFAULT_TIMEOUT_SECONDS: Final = 5.0
_PING: Final = pack(b"PING")
# How often one increment may find a record that the domain calls expired before giving up.
# Redis deletes a record when its TTL ends, so this takes a clock that disagrees with itself.
_EXPIRED_RECORD_ATTEMPTS: Final = 3
# How often one restore may find the counter changed between its judgement and its write.
_RESTORE_ATTEMPTS: Final = 5
_SCAN_COUNT: Final = b"1000"
_BY_ONE: Final = bulk(b"1")  # the amount of nearly every increment, packed once
# Increment commands kept packed but for their amount, for the counters in use: the keys, the
# name and the channel of a counter never change, and packing them was a fifth of the adapter's
# work per increment.
_PREPARED_INCREMENTS: Final = 4096


class RedisCounterRepository:
    """The CounterRepository port on Redis (see the package docstring for the layout).

    `round_trips` and `commands` count the pipelines and commands sent, for tests and
    benchmarks. Call `aclose()` when done (it hands the dedicated connection back to the pool);
    closing the client's pool closes it as well.
    """

    def __init__(self, client: Client, prefix: str = "counter:", *, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = configured_timeout(client) or DEFAULT_TIMEOUT_SECONDS
        self._client = client
        self._timeout = timeout
        self._prefix = prefix.encode()
        self._batcher = Batcher(DedicatedConnection(client), timeout)
        self._prepared_increment = functools.lru_cache(maxsize=_PREPARED_INCREMENTS)(self._prepare_increment)

    @property
    def prefix(self) -> str:
        return self._prefix.decode()

    @property
    def round_trips(self) -> int:
        return self._batcher.round_trips

    @property
    def commands(self) -> int:
        return self._batcher.commands

    async def aclose(self) -> None:
        await self._batcher.aclose()

    # --- the port ---------------------------------------------------------------------------

    async def get(self, name: CounterId, touch: bool = False) -> Counter:
        key = self._counter_key(name)
        if touch:
            reply = await self._call(scripts.TOUCH.call([key], []), scripts.TOUCH, write=True)
            if reply[0] != scripts.APPLIED:
                raise self._corrupted(reply)
            return Counter(name, 0) if len(reply) == 1 else fields.counter(name, key, *reply[1:])
        reply = await self._call(fields.pack_hmget(key), write=False)
        return fields.read_counter(name, key, reply) or Counter(name, 0)

    async def create(self, name: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        keys = [self._counter_key(name), self._names_key_of(name.namespace)]
        args = [
            b"%d" % count,
            name.key.encode(),
            *fields.rule_fields(rules),
            (admin_key_hash or "").encode(),
            names.changes_channel(self._prefix, name),
        ]
        reply = await self._call(scripts.CREATE.call(keys, args), scripts.CREATE, write=True)
        if reply[0] == scripts.EXISTS:
            raise CounterExistsError(f"counter {str(name)!r} exists")
        if reply[0] != scripts.APPLIED:
            raise self._corrupted(reply)
        return fields.counter(name, keys[0], *reply[1:])

    async def increment(
        self, name: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        if idempotency is None:  # the hot path: one call level fewer
            key, call = self._prepared_increment(name)
            command = call.with_first(_BY_ONE if by == 1 else bulk(b"%d" % by))
            try:  # _call written out: on the hot path a coroutine level costs measurably
                reply = await self._batcher.call(command, scripts.INCREMENT)
            except (UnreachableError, ReplyError) as exc:
                raise self._translate(exc, write=True) from exc
            return self._incremented(name, by, key, reply)
        keys = [self._counter_key(name), self._names_key_of(name.namespace), self._record_key(idempotency)]
        args = [b"%d" % by, name.key.encode(), names.changes_channel(self._prefix, name)]
        args += [idempotency.fingerprint.encode(), b"%d" % max(1, math.ceil(idempotency.ttl_seconds * 1000))]
        disregard: tuple[bytes, ...] = ()
        for _ in range(_EXPIRED_RECORD_ATTEMPTS):
            reply = await self._increment(keys, [*args, *disregard])
            if reply[0] != scripts.RECORDED:
                return self._incremented(name, by, keys[0], reply)
            record, now = self._record(name, keys[2], reply)
            replay = decide(idempotency, record, now)
            if replay is not None:
                return replay
            # The domain calls this record expired: apply, unless it has been replaced meanwhile.
            disregard = (reply[4] or b"",)
        raise StoreUnavailableError(
            f"the Idempotency-Key record {keys[2].decode()} kept being judged expired while Redis"
            " kept it; nothing was changed"
        )

    async def set(
        self,
        name: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        keys = [self._counter_key(name), self._names_key_of(name.namespace)]
        args = [b"%d" % count, name.key.encode(), names.changes_channel(self._prefix, name)]
        expected = _expected(expected_version, expected_created_at)
        reply = await self._call(scripts.SET.call(keys, [*args, *expected]), scripts.SET, write=True)
        if reply[0] != scripts.APPLIED:
            raise self._refused(name, expected_version, expected_created_at, reply)
        counter = fields.counter(name, keys[0], *reply[2:])
        return Replaced(counter=counter, previous=parse_int64(reply[1], keys[0].decode()))

    async def delete(
        self,
        name: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        keys = [self._counter_key(name), self._names_key_of(name.namespace)]
        args = [name.key.encode(), names.changes_channel(self._prefix, name)]
        expected = _expected(expected_version, expected_created_at)
        reply = await self._call(scripts.DELETE.call(keys, [*args, *expected]), scripts.DELETE, write=True)
        if reply[0] == scripts.NOT_FOUND:
            return None
        if reply[0] == scripts.DELETED:
            return fields.counter(name, keys[0], *reply[1:])
        raise self._refused(name, expected_version, expected_created_at, reply)

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        start = b"-" if after is None else b"(" + after.encode()
        names_key = self._names_key_of(namespace)
        listing = pack(b"ZRANGEBYLEX", names_key, start, b"+", b"LIMIT", b"0", b"%d" % (limit + 1))
        raw_names = await self._call(listing, write=False)
        names = [self._decode_name(names_key, namespace, raw) for raw in raw_names[:limit]]
        keys = [self._counter_key(name) for name in names]
        # Issued in one go, so they leave as one pipeline.
        futures = [self._batcher.call(fields.pack_hmget(key)) for key in keys]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        counters: list[Counter] = []
        gone: list[tuple[CounterId, bytes]] = []
        for name, key, reply in zip(names, keys, replies, strict=True):
            if isinstance(reply, BaseException):
                raise self._translate(reply, write=False) from reply
            counter = fields.read_counter(name, key, reply)
            if counter is not None:
                counters.append(counter)
            else:  # deleted since the listing, or expired
                gone.append((name, key))
        if gone:
            await self._prune(names_key, gone)
        more = len(raw_names) > limit
        return Page(counters=counters, next_after=names[-1].key if more and names else None)

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        """The namespaces whose names index exists: `default`'s, and those SCAN finds by the
        pattern of the others (glob characters of the prefix escaped). A pattern's `*` also
        matches a `:`, which no namespace holds, so what holds one is some other key."""
        escaped = b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in self._prefix)
        pattern = escaped + b"ns:*:names"
        start, end = len(self._prefix) + len(b"ns:"), -len(b":names")
        found: set[str] = set()
        cursor = b"0"
        while True:
            cursor, keys = await self._call(
                pack(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", _SCAN_COUNT), write=False
            )
            for raw in keys:
                middle = raw[start:end]
                if isinstance(raw, bytes) and middle.isascii() and NAME_RE.fullmatch(middle.decode()):
                    found.add(middle.decode())
            if cursor in (b"0", 0):
                break
        if await self._call(pack(b"EXISTS", self._names_key_of(DEFAULT_NAMESPACE)), write=False):
            found.add(DEFAULT_NAMESPACE)
        return sorted(name for name in found if after is None or name > after)[:limit]

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        name = counter.id
        keys = [self._counter_key(name), self._names_key_of(name.namespace)]
        existing: Counter | None = None
        seen: tuple[bytes, bytes] | None = None  # the count and updated_at of `existing`, raw
        for _ in range(_RESTORE_ATTEMPTS):
            now = datetime.now(UTC)
            outcome = decide_restore(existing, counter, replace=replace, now=now)
            if not outcome.writes:
                return Restored(outcome, existing or counter)
            state = state_to_restore(counter, existing, now)
            mode = [b"absent", b"", b""] if seen is None else [b"replace", *seen]
            written = [*fields.restore_fields(state, now), names.changes_channel(self._prefix, name)]
            reply = await self._call(
                scripts.RESTORE.call(keys, [*mode, *written]), scripts.RESTORE, write=True
            )
            if reply[0] == scripts.APPLIED:
                return Restored(outcome, state)
            if reply[0] != scripts.EXISTING:
                raise self._corrupted(reply)
            if len(reply) == 1:  # deleted since it was judged
                existing, seen = None, None
                continue
            existing = fields.counter(name, keys[0], *reply[1:])
            seen = (reply[1], reply[3] or b"")
        raise StoreUnavailableError(
            f"counter {str(name)!r} kept changing while it was restored; nothing was changed"
        )

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._call(_PING, write=False)
        except TimeoutError as exc:
            raise StoreUnavailableError(f"Redis did not answer PING within {self._timeout:g} s") from exc
        if reply not in (b"PONG", "PONG"):
            raise StoreUnavailableError(f"Redis answered PING with {reply!r}")

    # --- helpers ----------------------------------------------------------------------------

    async def _prune(self, names_key: bytes, gone: Sequence[tuple[CounterId, bytes]]) -> None:
        """Drop the names of expired counters from the index; a listing does not fail for it."""
        futures = [
            self._batcher.call(scripts.PRUNE.call([key, names_key], [name.key.encode()]), scripts.PRUNE)
            for name, key in gone
        ]
        await asyncio.gather(*futures, return_exceptions=True)

    async def _increment(self, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
        return await self._call(scripts.INCREMENT.call(keys, args), scripts.INCREMENT, write=True)

    def _prepare_increment(self, name: CounterId) -> tuple[bytes, scripts.PreparedCall]:
        """The counter's key and its increment command (no Idempotency-Key) but for the amount."""
        key = self._counter_key(name)
        call = scripts.INCREMENT.prepare(
            [key, self._names_key_of(name.namespace)],
            [name.key.encode(), names.changes_channel(self._prefix, name)],
        )
        return key, call

    def _incremented(self, name: CounterId, by: int, key: bytes, reply: Sequence[Any]) -> Incremented:
        status = reply[0]
        if status == scripts.APPLIED:
            return Incremented(counter=fields.counter(name, key, *reply[1:]))
        if status == scripts.STEP_REFUSED:
            # The domain words the refusal; the script only found it outside the range.
            rules = fields.counter(name, key, b"0", None, None, None, reply[1]).rules
            if rules is not None:
                rules.check_step(name, by)
        if status == scripts.OVERFLOW:
            raise CounterOverflowError(
                f"incrementing counter {str(name)!r} by {by} would leave the signed 64-bit range"
            )
        raise self._corrupted(reply)

    def _record(self, name: CounterId, key: bytes, reply: Sequence[Any]) -> tuple[IdempotencyRecord, float]:
        """The record the increment script handed back, and the server's time (Unix seconds)."""
        fingerprint, count, created_at, updated_at, now_us, ttl_ms, version = reply[1:8]
        now_microseconds = parse_microseconds(now_us)
        if not isinstance(fingerprint, bytes) or now_microseconds is None or not isinstance(ttl_ms, int):
            raise StoreCorruptedError(f"{key.decode()} holds an Idempotency-Key record that cannot be read")
        now = now_microseconds / 1_000_000
        # The record's expiry is its key's: Redis deletes it then. -1: a key without a TTL,
        # which this adapter never writes; it is kept until someone deletes it.
        expires_at = math.inf if ttl_ms < 0 else now + ttl_ms / 1000
        # The fingerprint covers the counter's name, so a record that matches was made for `name`.
        counter = fields.counter(name, key, count, created_at, updated_at, None, None, None, version)
        return IdempotencyRecord(fingerprint.decode(errors="replace"), counter, expires_at), now

    async def _call(self, command: bytes, script: scripts.Script | None = None, *, write: bool) -> Any:
        try:
            return await self._batcher.call(command, script)
        except (UnreachableError, ReplyError) as exc:
            raise self._translate(exc, write=write) from exc

    @staticmethod
    def _translate(exc: BaseException, *, write: bool) -> Exception:
        if isinstance(exc, UnreachableError):
            if write and exc.maybe_applied:
                return OutcomeUnknownError(
                    f"{exc}; the outcome is unknown: the change may or may not have been applied"
                    " (an increment retried with the same Idempotency-Key is applied only once)"
                )
            return StoreUnavailableError(f"{exc}; nothing was changed" if write else str(exc))
        message = str(exc)
        if "WRONGTYPE" in message or "not an integer" in message:
            return StoreCorruptedError(f"unreadable data in Redis: {message}")
        if isinstance(exc, ReplyError):
            # OOM, READONLY (a replica), BUSY, NOPERM...: Redis refused, nothing was written.
            return StoreUnavailableError(f"Redis refused the command: {message}")
        return StoreUnavailableError(describe(exc))

    @classmethod
    def _refused(
        cls, name: CounterId, expected: int | None, made: datetime | None, reply: Sequence[Any]
    ) -> Exception:
        """The error of a conditional write the script refused: a version mismatch, or data it
        cannot read."""
        if reply[0] == scripts.VERSION_MISMATCH and isinstance(reply[1], int):
            created_at = parse_time(reply[2]) if len(reply) > _MISMATCH_CREATED_AT else None
            check_version(name, expected, reply[1], made, created_at)
        return cls._corrupted(reply)

    @staticmethod
    def _corrupted(reply: Sequence[Any]) -> StoreCorruptedError:
        detail = reply[1].decode(errors="replace") if len(reply) > 1 else "unexpected reply"
        return StoreCorruptedError(f"unreadable data in Redis: {detail}")

    def _counter_key(self, name: CounterId) -> bytes:
        return names.counter_key(self._prefix, name)

    def _names_key_of(self, namespace: str) -> bytes:
        return names.names_key(self._prefix, namespace)

    def _record_key(self, idempotency: Idempotency) -> bytes:
        return names.record_key(self._prefix, idempotency)

    @staticmethod
    def _decode_name(names_key: bytes, namespace: str, raw: object) -> CounterId:
        if isinstance(raw, bytes) and raw.isascii():
            with contextlib.suppress(InvalidCounterNameError):
                return CounterId(namespace, raw.decode())
        raise StoreCorruptedError(f"{names_key.decode()} holds {raw!r}, which is not a counter name")


_MISMATCH_CREATED_AT = 2  # where a refused set or delete answers the counter's created_at


def _expected(version: int | None, created_at: datetime | None) -> tuple[bytes, bytes]:
    """The condition of a set or delete as the scripts read it, b"" for none."""
    made = b"" if created_at is None else microseconds(created_at)
    return (b"" if version is None else b"%d" % version, made)


async def open_redis_repository(
    url: str,
    prefix: str = "counter:",
    *,
    socket_timeout: float = 2.0,
    max_connections: int = 32,
    health_check_interval: float = 15.0,
) -> AsyncIterator[RedisCounterRepository]:
    """A Resource for the DI container (or `contextlib.asynccontextmanager`): a repository on a
    new client for `url`, closed with its pool at the end.

    Nothing is contacted here: a Redis that is down at start-up does not stop the service from
    starting. It reports not-ready (ping raises StoreUnavailableError) and each operation fails
    with StoreUnavailableError until Redis answers; the connection is (re)made on demand. A
    malformed URL does fail here (ValueError), because that is a configuration error.
    """
    client, pool = new_client(
        url,
        socket_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=health_check_interval,
        client_name="counter-web-server",
    )
    repository = RedisCounterRepository(client, prefix, timeout=socket_timeout)
    try:
        yield repository
    finally:
        try:
            await repository.aclose()
        finally:
            await client.aclose()
            await pool.aclose()
