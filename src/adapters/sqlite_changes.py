"""Change signals of the SQLite store: a poll of `PRAGMA data_version` on a connection of its own.

`data_version` changes whenever another connection, of this process or any other on the same
file, has committed since the connection last asked, so one cheap query per interval tells
whether anything changed; only then are the watched counters read again (through the store's
own reads) and their states published. The poll runs only while someone watches. Changes that
come faster than the interval are seen together: a stream gets the latest state, not each one.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from adapters.change_hub import ChangeHub, HubSubscription
from domain.errors import DomainError, StoreUnavailableError
from domain.model import Counter, CounterId
from domain.ports import CounterRepository

logger = logging.getLogger(__name__)


class SqliteCounterChanges:
    """CounterChanges of an SQLite file, by polling (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        read: Callable[[CounterId], Awaitable[Counter]],
        *,
        poll_interval_seconds: float,
    ) -> None:
        if poll_interval_seconds <= 0:
            raise ValueError("the poll interval must be positive")
        self.path = Path(path)
        self.poll_interval_seconds = poll_interval_seconds
        self.hub = ChangeHub()
        self.polls = 0  # how many times data_version was asked, for tests
        self._read = read
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sqlite-changes {self.path.name}"
        )
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None  # the data_version of the last poll whose changes were read
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    async def subscribe(self, counter: CounterId, buffer: int) -> HubSubscription:
        return await self.hub.subscribe(counter, buffer, self._polling)

    async def aclose(self) -> None:
        self.hub.end_all("the store is closing")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=False)

    async def _polling(self, _counter: CounterId) -> None:
        """Start the poll if it is not running; return once it has its first data_version, so a
        read made after this misses no later commit."""
        if self._task is None or self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.get_running_loop().create_task(self._poll(self._ready))
        await asyncio.shield(self._ready)

    async def _poll(self, ready: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                self._seen = await loop.run_in_executor(self._executor, self._data_version)
            except sqlite3.Error as error:
                ready.set_exception(
                    StoreUnavailableError(f"cannot watch the SQLite file for changes: {error}")
                )
                return
            ready.set_result(None)
            while self.hub.watched:
                await asyncio.sleep(self.poll_interval_seconds)
                await self._poll_once(loop)
        finally:
            if self._ready is ready:
                self._task = self._ready = None
            if not ready.done():
                ready.cancel()

    async def _poll_once(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            version = await loop.run_in_executor(self._executor, self._data_version)
        except sqlite3.Error as error:
            logger.warning("cannot poll the SQLite file for changes", extra={"error": str(error)})
            self._seen = None  # read everything again once it answers
            return
        if version == self._seen:
            return
        # Watched counters taken after data_version was read: a commit after that read changes
        # it again for the next poll, whoever subscribed in between.
        for counter in self.hub.watched:
            try:
                state = await self._read(counter)
            except DomainError as error:
                logger.warning(
                    "cannot read a watched counter", extra={"counter": str(counter), "error": str(error)}
                )
                return  # _seen unchanged: read again at the next poll
            self.hub.publish(state)
        self._seen = version

    def _data_version(self) -> int:
        self.polls += 1
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False)
        row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def open_sqlite_changes(
    path: str, poll_interval_seconds: float, repository: CounterRepository
) -> AsyncIterator[SqliteCounterChanges]:
    """Resource: the changes of the SQLite file at `path`, read through `repository`."""
    changes = SqliteCounterChanges(path, repository.get, poll_interval_seconds=poll_interval_seconds)
    try:
        yield changes
    finally:
        await changes.aclose()
