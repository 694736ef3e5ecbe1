"""Change signals of the Redis store: its own Pub/Sub messages, one connection per process.

Every write script PUBLISHes `"{version} {count}"` (or `"{version} deleted"`) on the counter's
channel in the same atomic step as the write (keys.changes_channel), so the messages of one
counter come in the order of its changes, one per change. This process SUBSCRIBEs to the
channel of a counter when its first stream opens and UNSUBSCRIBEs when its last one closes, on
one Pub/Sub connection, and fans each message out to the local streams.

Pub/Sub keeps nothing for a subscriber that is away. So whenever a channel's subscription is
confirmed again (redis-py reconnects and subscribes again by itself), or the connection is made
again after a failure, the counter is read again and its current state published: a stream
that missed changes gets the latest state (domain.changes keeps it from going backwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from adapters.change_hub import ChangeHub, HubSubscription
from adapters.redis.connection import Client, RedisError, new_pubsub_client
from adapters.redis.keys import changes_channel
from domain.errors import DomainError, StoreUnavailableError
from domain.model import Counter, CounterId
from domain.ports import CounterRepository

logger = logging.getLogger(__name__)

DELETED = b"deleted"
_RETRY_SECONDS = 1.0  # between two attempts to make the Pub/Sub connection again


def state_of(counter: CounterId, payload: bytes) -> Counter | None:
    """The counter's state in a change message, or None for a payload this store never sends."""
    version_text, _, value_text = payload.partition(b" ")
    try:
        version = int(version_text)
        if value_text == DELETED:
            return Counter(counter, 0)  # gone: as a read of it answers (version 0)
        return Counter(counter, int(value_text), version=version)
    except ValueError:
        return None


class RedisCounterChanges:
    """CounterChanges of a Redis server (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        prefix: str,
        read: Callable[[CounterId], Awaitable[Counter]],
        *,
        subscribe_timeout: float = 5.0,
    ) -> None:
        self.hub = ChangeHub(on_watch=self._watch, on_unwatch=self._unwatch)
        self.resyncs = 0  # how many times watched counters were read again after a loss, for tests
        self._client = client
        self._prefix = prefix
        self._read = read
        self._subscribe_timeout = subscribe_timeout
        self._pubsub: Any = None
        self._counters: dict[bytes, CounterId] = {}  # watched channels
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._live: set[bytes] = set()  # channels whose subscription was confirmed at least once
        self._lock = asyncio.Lock()  # SUBSCRIBE and UNSUBSCRIBE go out in the order they are asked
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def subscribe(self, counter: CounterId, buffer: int) -> HubSubscription:
        return await self.hub.subscribe(counter, buffer, self._confirmation)

    async def _confirmation(self, counter: CounterId) -> None:
        """Return once Redis has confirmed the SUBSCRIBE of `counter`'s channel."""
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await asyncio.shield(self._confirmed[changes_channel(self._prefix, counter)])
        except (TimeoutError, RedisError, OSError) as error:
            raise StoreUnavailableError(f"cannot subscribe to the changes in Redis: {error!r}") from None

    async def aclose(self) -> None:
        self.hub.end_all("the store is closing")
        for task in [self._listener, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *[t for t in [self._listener, *self._tasks] if t is not None], return_exceptions=True
        )
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()

    # --- watching -----------------------------------------------------------------------------

    def _watch(self, counter: CounterId) -> None:
        channel = changes_channel(self._prefix, counter)
        self._counters[channel] = counter
        self._confirmed[channel] = asyncio.get_running_loop().create_future()
        self._spawn(self._send("subscribe", channel))

    def _unwatch(self, counter: CounterId) -> None:
        channel = changes_channel(self._prefix, counter)
        self._counters.pop(channel, None)
        future = self._confirmed.pop(channel, None)
        if future is not None and not future.done():
            future.cancel()
        self._live.discard(channel)
        self._spawn(self._send("unsubscribe", channel))

    async def _send(self, command: str, channel: bytes) -> None:
        async with self._lock:
            # Asked again in between (watched again, or left again): the last word counts.
            if (command == "subscribe") != (channel in self._counters):
                return
            try:
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub()
                await getattr(self._pubsub, command)(channel)
                if self._listener is None or self._listener.done():
                    self._listener = asyncio.get_running_loop().create_task(self._listen())
            except (RedisError, OSError) as error:
                future = self._confirmed.get(channel)
                if command == "subscribe" and future is not None and not future.done():
                    future.set_exception(StoreUnavailableError(f"cannot subscribe in Redis: {error!r}"))
                    future.exception()  # retrieved: a stream may have stopped waiting
                logger.warning(
                    "redis pub/sub command failed", extra={"command": command, "error": str(error)}
                )
                self._drop_connection()

    def _drop_connection(self) -> None:
        """Forget the connection; the listener makes a new one and subscribes everything again."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            self._spawn(_quietly_close(pubsub))

    # --- listening ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        while self._counters:
            pubsub = self._pubsub
            if pubsub is None:
                await self._reconnect()
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as error:
                logger.warning("redis pub/sub connection lost", extra={"error": str(error)})
                if self._pubsub is pubsub:
                    self._drop_connection()
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if message is not None:
                self._handle(message)
        self._listener = None

    async def _reconnect(self) -> None:
        async with self._lock:
            channels = list(self._counters)
            if not channels:
                return
            try:
                pubsub = self._pubsub = self._client.pubsub()
                await pubsub.subscribe(*channels)
            except (RedisError, OSError) as error:
                logger.warning("cannot subscribe again in redis", extra={"error": str(error)})
                self._drop_connection()
        if self._pubsub is None:
            await asyncio.sleep(_RETRY_SECONDS)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if not isinstance(channel, bytes):
            return
        counter = self._counters.get(channel)
        if counter is None:
            return
        if kind == "message":
            data = message.get("data")
            state = state_of(counter, data) if isinstance(data, bytes) else None
            if state is None:
                logger.warning(
                    "unreadable change message", extra={"channel": channel.decode(errors="replace")}
                )
                self._spawn(self._catch_up(counter))
            else:
                self.hub.publish(state)
        elif kind == "subscribe":
            future = self._confirmed.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
            if channel in self._live:  # subscribed again: messages may have been missed
                self._spawn(self._catch_up(counter))
            self._live.add(channel)

    async def _catch_up(self, counter: CounterId) -> None:
        self.resyncs += 1
        try:
            self.hub.publish(await self._read(counter))
        except DomainError as error:
            logger.warning(
                "cannot read a watched counter", extra={"counter": str(counter), "error": str(error)}
            )

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _quietly_close(pubsub: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()


async def open_redis_changes(
    url: str, prefix: str, repository: CounterRepository
) -> AsyncIterator[RedisCounterChanges]:
    """Resource: the changes of the counters in Redis at `url`, on a client of their own (one
    Pub/Sub connection); nothing is contacted before the first stream."""
    client = new_pubsub_client(url, client_name="counter-web-server-changes")
    changes = RedisCounterChanges(client, prefix, repository.get)
    try:
        yield changes
    finally:
        try:
            await changes.aclose()
        finally:
            await client.aclose()
