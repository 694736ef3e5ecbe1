"""Use cases. They validate input, then call the port; they know no technology."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from domain.errors import (
    CounterExistsError,
    ForbiddenError,
    InvalidInputError,
    NoAdminKeyError,
    VersionMismatchError,
    WrongAdminKeyError,
)
from domain.idempotency import Idempotency
from domain.model import (
    Counter,
    CounterId,
    Incremented,
    Page,
    Replaced,
    VersionMatch,
    check_amount,
    check_name,
    check_value,
)
from domain.ports import CounterRepository
from domain.restore import Restored, RestoreOutcome, decide_restore
from domain.rules import Rules, admin_key_matches, new_admin_key
from domain.transfer import parse_line

MAX_PAGE_SIZE = 1000
Window = list[tuple[int, Counter]]  # line numbers and their counters
# Lines restored at once: the stores that group writes (SQLite, ConfigMap) commit them together.
IMPORT_WINDOW = 256
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
# How many times a change by a counter's admin key (or of a resettable counter) reads and judges
# the counter when the store finds it is no longer the one judged (CounterService._as_owner).
OWNER_ATTEMPTS = 3
T = TypeVar("T")


@dataclass(slots=True)
class CounterService:
    """A counter is named by a CounterId, which checks its namespace and key when it is made."""

    repository: CounterRepository
    idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS

    async def get(self, counter: CounterId, touch: bool = False) -> Counter:
        return await self.repository.get(counter, touch)

    async def create(
        self, counter: CounterId, count: int = 0, rules: Rules | None = None, *, admin_key: bool = True
    ) -> tuple[Counter, str | None]:
        """Create the counter explicitly with its rules. Returns it and, when asked for, its
        admin key: the one time the key is seen, as only its hash is kept."""
        key, key_hash = new_admin_key() if admin_key else (None, None)
        created = await self.repository.create(counter, check_value(count), rules or Rules(), key_hash)
        return created, key

    async def ensure(self, counter: CounterId, rules: Rules) -> bool:
        """Make the counter at 0 with `rules` and no admin key unless it exists (a counter that
        the first hit makes); whether this call made it."""
        if (await self.repository.get(counter)).exists:
            return False
        try:
            await self.repository.create(counter, 0, rules, None)
        except CounterExistsError:
            return False  # another request made it first
        return True

    async def authorize(self, counter: CounterId, admin_key: str | None, *, reset: bool = False) -> bool:
        """Whether a caller without the service admin token may change `counter`: it holds the
        counter's admin key, or (`reset`: to set or reset it) the counter is resettable."""
        try:
            _judge(await self.repository.get(counter), admin_key, resettable=reset)
        except ForbiddenError:
            return False
        return True

    async def check_owner(self, counter: CounterId, admin_key: str) -> Counter:
        """The counter, when `admin_key` is its own admin key (the caller may then change it
        as an admin). NoAdminKeyError when it has none, WrongAdminKeyError for another key:
        told apart, for an API that answers them differently."""
        current = await self.repository.get(counter)
        _judge(current, admin_key, resettable=False)
        return current

    async def increment(
        self, counter: CounterId, by: int = 1, idempotency_key: str | None = None
    ) -> Incremented:
        check_amount(by)
        idempotency = (
            None
            if idempotency_key is None
            else Idempotency.for_increment(idempotency_key, counter, by, self.idempotency_ttl_seconds)
        )
        return await self.repository.increment(counter, by, idempotency)

    async def set(
        self,
        counter: CounterId,
        count: int,
        *,
        admin: bool = True,
        admin_key: str | None = None,
        match: VersionMatch | None = None,
        key_only: bool = False,
    ) -> Replaced:
        """`admin`: the caller holds the service admin token (checked by the entrypoint);
        otherwise it needs the counter's admin key, or the counter must be resettable (unless
        `key_only`), judged with the write (`_as_owner`). `match`: only when the counter is at one
        of those versions (VersionMismatchError otherwise)."""
        check_value(count)
        if admin:
            return await self.repository.set(counter, count, await self._expected(counter, match))

        def write(version: int | None, made: datetime | None) -> Awaitable[Replaced]:
            return self.repository.set(counter, count, version, made)

        return await self._as_owner(counter, admin_key, match, write, resettable=not key_only)

    async def delete(
        self,
        counter: CounterId,
        *,
        admin: bool = True,
        admin_key: str | None = None,
        match: VersionMatch | None = None,
    ) -> Counter | None:
        if admin:
            return await self.repository.delete(counter, await self._expected(counter, match))

        def write(version: int | None, made: datetime | None) -> Awaitable[Counter | None]:
            return self.repository.delete(counter, version, made)

        return await self._as_owner(counter, admin_key, match, write, resettable=False)

    async def _as_owner(
        self,
        counter: CounterId,
        admin_key: str | None,
        match: VersionMatch | None,
        write: Callable[[int | None, datetime | None], Awaitable[T]],
        *,
        resettable: bool,
    ) -> T:
        """`write` by a caller without the service admin token, judged (`_judge`) on the counter
        as read, on condition that the store still holds that counter: the same life (its
        `created_at`; its key and rules never change within one) and, with `match`, the version
        read. An increment meanwhile changes neither its life nor its owner, so it does not stop
        the write; a counter deleted, or made again (at any version), is read and judged again,
        OWNER_ATTEMPTS times at most: the caller gets the refusal of the counter that is there."""
        refused: VersionMismatchError | None = None
        for _ in range(OWNER_ATTEMPTS):
            current = await self.repository.get(counter)
            _judge(current, admin_key, resettable=resettable)
            version = None if match is None else _allowed(counter, match, current.version)
            try:
                return await write(version, current.created_at)
            except VersionMismatchError as error:
                refused = error
        if match is not None and refused is not None:
            try:
                raise refused  # the client's own condition kept failing: its 412
            finally:
                # Its traceback holds this frame: without this, a reference cycle per refusal.
                refused = None
        raise ForbiddenError(
            f"counter {str(counter)!r} was deleted and made again while it was being changed;"
            " nothing was changed"
        )

    async def _expected(self, counter: CounterId, match: VersionMatch | None) -> int | None:
        """The one version the store checks atomically with the write. Where `match` allows
        several (`*`, a list), it is the version read now, if allowed: a change in between
        makes the store's check fail, as a change just before the request would have."""
        if match is None:
            return None
        if match.versions is not None and len(match.versions) == 1:
            return next(iter(match.versions))
        return _allowed(counter, match, (await self.repository.get(counter)).version)

    async def list(self, namespace: str, after: str | None = None, limit: int = 100) -> Page:
        check_name(namespace, "namespace")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
        return await self.repository.list(namespace, None if after is None else check_name(after), limit)

    async def ping(self) -> None:
        await self.repository.ping()

    async def export(self, namespace: str | None = None) -> AsyncIterator[Counter]:
        """Every live counter of `namespace`, or of every namespace, by namespace then key, read
        page by page (each page is consistent, the whole is not a snapshot)."""
        spaces = self._namespaces() if namespace is None else _one(check_name(namespace, "namespace"))
        async for space in spaces:
            after = None
            while True:
                page = await self.repository.list(space, after, MAX_PAGE_SIZE)
                for counter in page.counters:
                    yield counter
                if page.next_after is None:
                    break
                after = page.next_after

    async def _namespaces(self) -> AsyncIterator[str]:
        after = None
        while True:
            names = await self.repository.namespaces(after, MAX_PAGE_SIZE)
            for name in names:
                yield name
            if len(names) < MAX_PAGE_SIZE:
                return
            after = names[-1]

    async def import_(
        self,
        lines: Iterable[str],
        *,
        replace: bool = False,
        dry_run: bool = False,
        each: Callable[[int, Restored, ImportReport], None] | None = None,
    ) -> ImportReport:
        """Restore the counters of export lines, in order, each in one atomic step; `each` is told
        the line number and outcome of every counter, and the report so far. The first malformed
        line stops the import: every line before it has been applied, none after it (the
        report's `error` names it).
        Lines go to the store IMPORT_WINDOW at a time, a window ending before a counter that it
        holds already, so the lines of one counter apply in their order. `dry_run` reads and
        writes nothing."""
        report = ImportReport()
        window: Window = []
        held: set[CounterId] = set()  # the counters of the window
        read = 0
        for read, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                counter, _source = parse_line(text)
            except InvalidInputError as error:
                await self._restore_window(window, report, replace, dry_run, each)
                report.lines, report.error = read, f"line {read}: {error}"
                return report
            if len(window) == IMPORT_WINDOW or counter.id in held:
                await self._restore_window(window, report, replace, dry_run, each)
                held.clear()
            window.append((read, counter))
            held.add(counter.id)
        await self._restore_window(window, report, replace, dry_run, each)
        report.lines = read
        return report

    async def _restore_window(
        self,
        window: Window,
        report: ImportReport,
        replace: bool,
        dry_run: bool,
        each: Callable[[int, Restored, ImportReport], None] | None,
    ) -> None:
        restore = self._judge if dry_run else self.repository.restore
        results = await asyncio.gather(*(restore(c, replace) for _, c in window), return_exceptions=True)
        for (number, _), result in zip(window, results, strict=True):
            if isinstance(result, BaseException):
                window.clear()
                raise ImportFailedError(number, report, result) from result
            report.outcomes[result.outcome] = report.count(result.outcome) + 1
            report.lines = number
            if each is not None:
                each(number, result, report)
        window.clear()

    async def _judge(self, counter: Counter, replace: bool) -> Restored:
        """What restore would do, from a read (a dry run: not atomic with anything)."""
        stored = await self.repository.get(counter.id)
        existing = None if stored.created_at is None else stored
        outcome = decide_restore(existing, counter, replace=replace, now=datetime.now(UTC))
        return Restored(outcome, existing or counter)


def _judge(current: Counter, admin_key: str | None, *, resettable: bool) -> None:
    """Raise unless a caller without the service admin token may change `current`: it holds the
    counter's admin key, or (`resettable`: to set or reset it) the counter is resettable.
    NoAdminKeyError when the counter has no key (a missing one has none), WrongAdminKeyError for
    another key. Raised here, never returned to be raised: an error held in a local of the
    frame that raises it is a reference cycle through its traceback."""
    if resettable and current.rules is not None and current.rules.resettable:
        return
    if current.admin_key_hash is None:
        raise NoAdminKeyError(f"counter {str(current.id)!r} has no admin key")
    if not admin_key_matches(admin_key, current.admin_key_hash):
        raise WrongAdminKeyError(f"that is not the admin key of counter {str(current.id)!r}")


def _allowed(counter: CounterId, match: VersionMatch, current: int) -> int:
    """`current`, the version read, when `match` allows it; else VersionMismatchError."""
    if not match.matches(current):
        raise VersionMismatchError(
            f"counter {str(counter)!r} is at version {current}, which If-Match does not allow;"
            " nothing was changed",
            current=current,
        )
    return current


@dataclass(slots=True)
class ImportReport:
    """How many lines were read (so far: up to the last one applied) and what became of their
    counters; `error`: the malformed line that stopped the import, `line N: what is wrong`."""

    lines: int = 0
    outcomes: dict[RestoreOutcome, int] = field(default_factory=dict)
    error: str | None = None

    def count(self, outcome: RestoreOutcome) -> int:
        return self.outcomes.get(outcome, 0)


class ImportFailedError(Exception):
    """The store failed the counter of line `number`; the lines before it were applied (and
    lines of its window after it may have been: importing again is safe)."""

    def __init__(self, number: int, report: ImportReport, cause: BaseException) -> None:
        super().__init__(f"line {number}: {cause}")
        self.number = number
        self.report = report
        self.cause = cause


async def _one(name: str) -> AsyncIterator[str]:
    yield name
