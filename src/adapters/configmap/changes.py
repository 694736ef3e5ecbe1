"""Change signals of the ConfigMap store: a Kubernetes watch on its ConfigMap.

The official client's `Watch` runs in a thread of its own (the client is synchronous), on an
API client of its own, from the resourceVersion of a first list: every write of the ConfigMap,
by any replica, arrives as an event, and the watched counters are then read again (the store's
own reads, shared by concurrent callers) and their states published. A watch that ends (its
server-side timeout, a dropped connection) resumes from the last resourceVersion it saw; one
whose version has expired (410 Gone) lists again and re-reads everything, so nothing between
is lost. One write carries a whole batch of increments: a stream gets the state after the
batch. The watch starts with the first stream and runs until the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from adapters.change_hub import ChangeHub, HubSubscription
from adapters.configmap.api import new_api_client
from adapters.configmap.repository import ConfigMapCounterRepository
from domain.errors import DomainError, StoreUnavailableError
from domain.model import Counter, CounterId

logger = logging.getLogger(__name__)

WATCH_SECONDS = 30  # each watch request's server-side timeout; then it is resumed
_RETRY_SECONDS = 1.0
_GONE = 410


class ConfigMapCounterChanges:
    """CounterChanges of one ConfigMap (see the module docstring). `core` is a CoreV1Api of
    its own: its watch holds one connection for as long as it runs."""

    def __init__(
        self, core: Any, name: str, namespace: str, read: Callable[[CounterId], Awaitable[Counter]]
    ) -> None:
        self.hub = ChangeHub()
        self.name = name
        self.namespace = namespace
        self.events = 0  # watch events received, for tests
        self.relists = 0  # lists after an expired resourceVersion, for tests
        self._core = core
        self._read = read
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread: threading.Thread | None = None
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False

    async def subscribe(self, counter: CounterId, buffer: int) -> HubSubscription:
        return await self.hub.subscribe(counter, buffer, self._watching)

    def close(self) -> None:
        """Stop the watch; its thread ends with the request in flight, without being waited for."""
        self.hub.end_all("the store is closing")
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.stop()
        if self._refreshing is not None:
            self._refreshing.cancel()

    async def _watching(self, _counter: CounterId) -> None:
        """The watch, started on the first subscription; returns once it knows where it starts
        from (a failed start is tried again by the next subscription)."""
        if self._ready is None or (self._ready.done() and self._ready.exception() is not None):
            self._loop = asyncio.get_running_loop()
            self._ready = self._loop.create_future()
            self._thread = threading.Thread(
                target=self._run, name=f"configmap-watch {self.name}", daemon=True
            )
            self._thread.start()
        await asyncio.shield(self._ready)

    # --- in the watch's thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            with contextlib.suppress(Exception):
                self._core.api_client.close()

    def _follow(self) -> None:
        try:
            version = self._list()
        except Exception as error:  # noqa: BLE001 - whatever the client raises, the stream gets a 503
            self._tell_ready(StoreUnavailableError(f"cannot watch the ConfigMap: {error}"))
            return
        self._tell_ready(None)
        while not self._stop.is_set():
            try:
                version = self._watch_from(version)
            except ApiException as error:
                if error.status == _GONE:
                    self.relists += 1
                    version = self._relist(version)
                else:
                    self._pause("the ConfigMap watch failed", error)
            except Exception as error:  # noqa: BLE001 - a dropped connection, a timeout: resume
                self._pause("the ConfigMap watch was interrupted", error)

    def _list(self) -> str:
        listed = self._core.list_namespaced_config_map(
            self.namespace, field_selector=f"metadata.name={self.name}", _request_timeout=10
        )
        return str(listed.metadata.resource_version)

    def _relist(self, version: str) -> str:
        try:
            version = self._list()
        except Exception as error:  # noqa: BLE001
            self._pause("cannot list the ConfigMap again", error)
            return version
        self._changed()  # whatever happened since the expired version is read now
        return version

    def _watch_from(self, version: str) -> str:
        watch = self._watch = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        for event in watch.stream(  # type: ignore[no-untyped-call]
            self._core.list_namespaced_config_map,
            self.namespace,
            field_selector=f"metadata.name={self.name}",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 10,
            deserialize=False,
        ):
            obj = event.get("object") or {}
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if event.get("type") != "BOOKMARK":
                self.events += 1
                self._changed()
            if self._stop.is_set():
                break
        return version

    def _pause(self, what: str, error: BaseException) -> None:
        logger.warning(what, extra={"configmap": f"{self.namespace}/{self.name}", "error": str(error)})
        self._stop.wait(_RETRY_SECONDS)
        self._changed()  # changes may have been missed while the watch was down

    def _tell_ready(self, error: BaseException | None) -> None:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return

        def tell() -> None:
            if ready.done():
                return
            if error is None:
                ready.set_result(None)
            else:
                ready.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(tell)

    def _changed(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._refresh)

    # --- on the event loop ----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read the watched counters again; a change during a read reads them once more after."""
        if self._refreshing is not None and not self._refreshing.done():
            self._again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._read_watched())

    async def _read_watched(self) -> None:
        while True:
            self._again = False
            for counter in self.hub.watched:
                try:
                    self.hub.publish(await self._read(counter))
                except DomainError as error:
                    logger.warning(
                        "cannot read a watched counter", extra={"counter": str(counter), "error": str(error)}
                    )
            if not self._again:
                return


async def open_configmap_changes(
    repository: ConfigMapCounterRepository, kubeconfig: str | None = None
) -> AsyncIterator[ConfigMapCounterChanges]:
    """Resource: the changes of `repository`'s ConfigMap, watched on a client of their own."""
    api_client = await asyncio.to_thread(new_api_client, kubeconfig, pool_size=1)
    changes = ConfigMapCounterChanges(
        k8s_client.CoreV1Api(api_client), repository.name, repository.namespace, repository.get
    )
    try:
        yield changes
    finally:
        changes.close()
