"""Use cases. They validate input, then call the port; they know no technology."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidInputError
from domain.idempotency import Idempotency
from domain.model import (
    Counter,
    CounterId,
    Incremented,
    Page,
    Replaced,
    check_amount,
    check_name,
    check_value,
)
from domain.ports import CounterRepository

MAX_PAGE_SIZE = 1000
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0


@dataclass(slots=True)
class CounterService:
    """A counter is named by a CounterId, which checks its namespace and key when it is made."""

    repository: CounterRepository
    idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS

    async def get(self, counter: CounterId) -> Counter:
        return await self.repository.get(counter)

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

    async def set(self, counter: CounterId, count: int) -> Replaced:
        return await self.repository.set(counter, check_value(count))

    async def delete(self, counter: CounterId) -> Counter | None:
        return await self.repository.delete(counter)

    async def list(self, namespace: str, after: str | None = None, limit: int = 100) -> Page:
        check_name(namespace, "namespace")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
        return await self.repository.list(namespace, None if after is None else check_name(after), limit)

    async def ping(self) -> None:
        await self.repository.ping()
