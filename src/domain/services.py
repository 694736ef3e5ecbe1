"""Use cases. They validate input, then call the port; they know no technology."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidInputError
from domain.idempotency import Idempotency
from domain.model import (
    Counter,
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
    repository: CounterRepository
    idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS

    async def get(self, name: str) -> Counter:
        return await self.repository.get(check_name(name))

    async def increment(self, name: str, by: int = 1, idempotency_key: str | None = None) -> Incremented:
        check_name(name)
        check_amount(by)
        idempotency = (
            None
            if idempotency_key is None
            else Idempotency.for_increment(idempotency_key, name, by, self.idempotency_ttl_seconds)
        )
        return await self.repository.increment(name, by, idempotency)

    async def set(self, name: str, count: int) -> Replaced:
        return await self.repository.set(check_name(name), check_value(count))

    async def delete(self, name: str) -> Counter | None:
        return await self.repository.delete(check_name(name))

    async def list(self, after: str | None = None, limit: int = 100) -> Page:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
        return await self.repository.list(None if after is None else check_name(after), limit)

    async def ping(self) -> None:
        await self.repository.ping()
