"""Use cases. They validate input, then call the port; they know no technology."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import ForbiddenError, InvalidInputError, VersionMismatchError
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
from domain.rules import Rules, admin_key_matches, new_admin_key

MAX_PAGE_SIZE = 1000
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0


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

    async def authorize(self, counter: CounterId, admin_key: str | None, *, reset: bool = False) -> bool:
        """Whether a caller without the service admin token may change `counter`: it holds the
        counter's admin key, or (`reset`: to set or reset it) the counter is resettable."""
        current = await self.repository.get(counter)
        if reset and current.rules is not None and current.rules.resettable:
            return True
        return admin_key_matches(admin_key, current.admin_key_hash)

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
    ) -> Replaced:
        """`admin`: the caller holds the service admin token (checked by the entrypoint);
        otherwise it needs the counter's admin key, or the counter must be resettable. `match`:
        only when the counter is at one of those versions (VersionMismatchError otherwise)."""
        check_value(count)
        if not admin and not await self.authorize(counter, admin_key, reset=True):
            raise ForbiddenError(f"counter {str(counter)!r} may only be set with its admin key")
        return await self.repository.set(counter, count, await self._expected(counter, match))

    async def delete(
        self,
        counter: CounterId,
        *,
        admin: bool = True,
        admin_key: str | None = None,
        match: VersionMatch | None = None,
    ) -> Counter | None:
        if not admin and not await self.authorize(counter, admin_key):
            raise ForbiddenError(f"counter {str(counter)!r} may only be deleted with its admin key")
        return await self.repository.delete(counter, await self._expected(counter, match))

    async def _expected(self, counter: CounterId, match: VersionMatch | None) -> int | None:
        """The one version the store checks atomically with the write. Where `match` allows
        several (`*`, a list), it is the version read now, if allowed: a change in between
        makes the store's check fail, as a change just before the request would have."""
        if match is None:
            return None
        if match.versions is not None and len(match.versions) == 1:
            return next(iter(match.versions))
        current = (await self.repository.get(counter)).version
        if not match.matches(current):
            raise VersionMismatchError(
                f"counter {str(counter)!r} is at version {current}, which If-Match does not allow;"
                " nothing was changed",
                current=current,
            )
        return current

    async def list(self, namespace: str, after: str | None = None, limit: int = 100) -> Page:
        check_name(namespace, "namespace")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
        return await self.repository.list(namespace, None if after is None else check_name(after), limit)

    async def ping(self) -> None:
        await self.repository.ping()
