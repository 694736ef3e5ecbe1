"""Bounded load against a real `counter serve`, with every answer kept, for the SQLite fault tests.

Clients POST one counter, one request at a time each, paced, until told to stop or until the
cap on requests is reached; a reader GETs it meanwhile. Each answer is kept with when it was
sent and when it came back, so a test can judge what happened during a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

STORE_UNAVAILABLE = "urn:counter-web-server:problem:store-unavailable"
OUTCOME_UNKNOWN = "urn:counter-web-server:problem:outcome-unknown"


@dataclass(frozen=True)
class Answer:
    method: str
    status: int  # 0: no answer (a transport error)
    sent: float  # time.monotonic()
    answered: float
    problem_type: str | None = None
    retry_after: str | None = None

    @property
    def waited(self) -> float:
        return self.answered - self.sent


@dataclass
class Load:
    posts: list[Answer] = field(default_factory=list)
    gets: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def status_count(self, status: int) -> int:
        return sum(1 for a in self.posts if a.status == status)

    def summary(self, stored: int) -> str:
        other = len(self.posts) - self.status_count(200) - self.status_count(503)
        unknown = sum(1 for a in self.posts if a.problem_type == OUTCOME_UNKNOWN)
        return (
            f"sent={len(self.posts)} 2xx={self.status_count(200)} 503={self.status_count(503)}"
            f" (outcome-unknown {unknown}) other={other} stored={stored} reads={len(self.gets)}"
            f" max_wait={max((a.waited for a in self.posts), default=0.0):.2f}s"
        )


async def _answer(client: httpx.AsyncClient, method: str, path: str) -> Answer:
    sent = time.monotonic()
    try:
        response = await client.request(method, path)
    except httpx.HTTPError:
        return Answer(method, 0, sent, time.monotonic())
    problem = response.json().get("type") if response.status_code >= 400 else None
    return Answer(
        method, response.status_code, sent, time.monotonic(), problem, response.headers.get("retry-after")
    )


async def _poster(client: httpx.AsyncClient, load: Load, path: str, cap: int, pause: float) -> None:
    while not load.stop.is_set() and len(load.posts) < cap:
        load.posts.append(await _answer(client, "POST", path))
        await asyncio.sleep(pause)


async def _reader(client: httpx.AsyncClient, load: Load, path: str, pause: float) -> None:
    while not load.stop.is_set():
        load.gets.append(await _answer(client, "GET", path))
        await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def running_load(
    url: str,
    path: str,
    *,
    clients: int = 8,
    cap: int = 2000,
    pause: float = 0.02,
    request_timeout: float = 15.0,
) -> AsyncIterator[Load]:
    """Load on `path` while the block runs; stopped, and every request answered, when it ends."""
    load = Load()
    async with httpx.AsyncClient(base_url=url, timeout=request_timeout) as client:
        tasks = [asyncio.create_task(_poster(client, load, path, cap, pause)) for _ in range(clients)]
        tasks.append(asyncio.create_task(_reader(client, load, path, pause * 2)))
        try:
            yield load
        finally:
            load.stop.set()
            await asyncio.gather(*tasks)
