"""Reads shared by concurrent callers: one GET serves every `get` and `list` that waits for it.

A caller must see a state read after its call began (a `get` right after an acknowledged increment
must show it), so a caller that arrives while a GET is in flight waits for the next one, which all
such late callers share. So a repository has one GET in flight at a time, however many readers
wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from adapters.configmap.api import TRANSIENT, ApiError, ConfigMapApi
from adapters.configmap.batch import mark_retrieved
from adapters.configmap.codec import Snapshot
from adapters.configmap.retry import Bounds, pause
from adapters.configmap.stats import ConfigMapStats
from domain.errors import StoreUnavailableError

log = logging.getLogger(__name__)


class SharedReader:
    def __init__(
        self, api: ConfigMapApi, stats: ConfigMapStats, *, max_attempts: int, max_retry_seconds: float
    ) -> None:
        self._api = api
        self._stats = stats
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._running: asyncio.Future[Snapshot] | None = None
        self._next: asyncio.Future[Snapshot] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def read(self) -> Snapshot:
        """A snapshot read after this call began."""
        if self._api.closed:
            raise StoreUnavailableError("the ConfigMap store is closed")
        loop = asyncio.get_running_loop()
        if self._running is None:
            future: asyncio.Future[Snapshot] = loop.create_future()
            self._running = future
            task = loop.create_task(self._run(future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            # The read in flight may have started before this call: wait for the next one.
            if self._next is None:
                self._next = loop.create_future()
            future = self._next
        try:
            return await asyncio.shield(future)
        except StoreUnavailableError as error:
            raise StoreUnavailableError(str(error), retry_after=error.retry_after) from None

    async def aclose(self) -> None:
        """Stop reading; whoever still waits is cancelled."""
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in (self._running, self._next):
            if future is not None and not future.done():
                future.cancel()

    async def _run(self, future: asyncio.Future[Snapshot] | None) -> None:
        while future is not None:
            future.add_done_callback(mark_retrieved)
            try:
                snapshot = await self._read_with_retries()
            except asyncio.CancelledError:
                future.cancel()
                raise
            except StoreUnavailableError as error:
                future.set_exception(error)
            except Exception as error:  # a bug must not leave readers waiting forever
                log.exception("configmap_read_failed", extra={"configmap": self._api.name})
                future.set_exception(
                    StoreUnavailableError(f"the ConfigMap store failed: {type(error).__name__}")
                )
            else:
                future.set_result(snapshot)
            future, self._next = self._next, None
            self._running = future

    async def _read_with_retries(self) -> Snapshot:
        bounds = Bounds.start(self._max_attempts, self._max_retry_seconds)
        while True:
            try:
                return await self._api.read()
            except ApiError as error:
                if error.kind not in TRANSIENT:
                    raise self._api.unavailable(error, "get") from None
                await pause(bounds, error, self._stats)
                if bounds.exhausted():
                    raise self._api.unavailable(error, "get", retry_after=bounds.retry_after) from None
