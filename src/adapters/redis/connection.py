"""Every use of redis-py beyond its documented client API, in one module.

The batcher writes whole pipelines of hand-packed commands to one connection and reads the
replies back undecoded; redis-py offers no public API for that, so this module drives a
connection from the client's pool directly: `ConnectionPool.get_connection` / `release`,
`send_packed_command(check_health=False)`, `read_response(disable_decoding=True,
timeout=math.inf)`, `can_read`, `check_health`, `is_connected`, `connect` / `disconnect`, the
connection's `socket_timeout` attribute, the pool's `connection_kwargs`, and the error reply
classes `ResponseError` / `NoScriptError`. Replies that the hiredis parser holds already (all
but the first of a pipeline, as a rule) are taken from its reader (`_parser._reader.gets`,
`_parser._connected`, the parser's `NOT_ENOUGH_DATA`) without the three coroutines of
`read_response` per reply; the first, and any reply not yet read whole, go through
`read_response`. None of these is promised across redis-py releases,
so they are used here and nowhere else, and tests/integration/test_redis_internals.py fails when
an upgrade changes one of them. The rest of the package sees `DedicatedConnection`, `LinkError`
and `ReplyError` (and, for the Pub/Sub of live updates, which uses only the documented client
API, `new_pubsub_client` and `RedisError`), and never imports redis.
"""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from adapters.redis.protocol import describe

__all__ = [
    "Client",
    "DedicatedConnection",
    "LinkError",
    "RedisError",
    "ReplyError",
    "configured_timeout",
    "new_client",
    "new_pubsub_client",
]

Client = redis.asyncio.Redis


class LinkError(Exception):
    """The connection failed (refused, reset, closed, a protocol error). redis-py has already
    dropped the socket; the next `ready()` reconnects."""


class ReplyError(Exception):
    """Redis answered one command with an error reply. `missing_script` is True for NOSCRIPT,
    which means that the script did not run at all."""

    def __init__(self, message: str, *, missing_script: bool) -> None:
        super().__init__(message)
        self.missing_script = missing_script


def new_client(
    url: str,
    *,
    socket_timeout: float,
    max_connections: int,
    health_check_interval: float,
    client_name: str,
) -> tuple[Client, ConnectionPool]:
    """A client on a pool of its own for `url`; nothing is contacted yet. Raises ValueError for
    a malformed URL. Close both, the client first."""
    pool = ConnectionPool.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=health_check_interval,
        client_name=client_name,
    )
    return Client(connection_pool=pool), pool


def new_pubsub_client(url: str, *, client_name: str) -> Client:
    """A client for Pub/Sub at `url` (no read timeout: a subscription waits as long as it must;
    keepalive and health checks find a dead link); nothing is contacted yet."""
    return Client.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=15.0,
        client_name=client_name,
    )


def configured_timeout(client: Client) -> float | None:
    """The socket timeout the client's connections were configured with, if any."""
    configured = client.connection_pool.connection_kwargs.get("socket_timeout")
    return float(configured) if configured else None


class DedicatedConnection:
    """One connection of the client's pool, kept for the caller's sole use until `release()`.

    Taken from the pool (so closing the pool closes it) on the first `ready()`, and reconnected
    by `ready()` after a failure. Its own socket timeout is switched off while it is kept: the
    caller bounds each round trip as a whole (with `asyncio.timeout`), and a socket_timeout of its
    own would make redis-py wrap each write in `asyncio.wait_for`, which on Python 3.11 is one
    more task and two more event-loop turns per round trip.
    """

    def __init__(self, client: Client) -> None:
        self._pool = client.connection_pool
        self._connection: AbstractConnection | None = None
        self._socket_timeout: float | None = None  # restored on release

    async def ready(self) -> None:
        """Make sure the connection is open and in step, reconnecting if needed."""
        try:
            await self._ready()
        except (RedisError, OSError) as exc:
            raise LinkError(describe(exc)) from exc

    async def send(self, payload: bytes) -> None:
        """Write packed commands as they are, in one go (after `ready()`)."""
        try:
            # No health check here: ready() has just made one.
            await self._checked_out().send_packed_command(payload, check_health=False)
        except (RedisError, OSError) as exc:
            raise LinkError(describe(exc)) from exc

    async def read(self, count: int) -> list[Any]:
        """The next `count` replies in order, undecoded; an error reply as an ReplyError."""
        connection = self._checked_out()
        replies: list[Any] = []
        try:
            for _ in range(count):
                reply = _buffered_reply(connection)
                if reply is NOT_ENOUGH_DATA:
                    try:
                        # timeout=math.inf: no per-reply timer, the caller bounds the round trip.
                        reply = await connection.read_response(disable_decoding=True, timeout=math.inf)
                    except ResponseError as error:
                        reply = error
                elif _is_link_failure(reply):  # as read_response treats it: the link is unusable
                    await connection.disconnect(nowait=True)
                    raise reply[0] if isinstance(reply, list) else reply
                if isinstance(reply, ResponseError):
                    reply = ReplyError(str(reply), missing_script=isinstance(reply, NoScriptError))
                replies.append(reply)
        except (RedisError, OSError) as exc:
            raise LinkError(describe(exc)) from exc
        return replies

    async def drop(self) -> None:
        """Close the socket at once: after a failure half-way through a reply it is out of step."""
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)

    async def release(self) -> None:
        """Hand the connection back to the pool, as the pool configured it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.socket_timeout = self._socket_timeout
            await self._pool.release(connection)

    def _checked_out(self) -> AbstractConnection:
        if self._connection is None:
            raise LinkError("the connection is not open")
        return self._connection

    async def _ready(self) -> None:
        connection = self._connection
        if connection is None:
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            self._socket_timeout, connection.socket_timeout = connection.socket_timeout, None
            self._connection = connection
        if not connection.is_connected:
            await connection.connect()
            return
        try:
            # Between round trips nothing may be readable: data or EOF means the server closed
            # the socket (a restart) or it is out of step. The PING of check_health runs only
            # after health_check_interval idle seconds; it finds sockets that died silently.
            usable = not await connection.can_read()
            if usable:
                await connection.check_health()
        except (RedisError, OSError):
            usable = False
        if not usable:
            await connection.disconnect()
            await connection.connect()


def _buffered_reply(connection: AbstractConnection) -> Any:
    """The next reply when the hiredis parser holds all of it already, else NOT_ENOUGH_DATA.
    An error reply is returned as its ResponseError, as the parser returns it."""
    parser = connection._parser  # noqa: SLF001 (this module's purpose: see its docstring)
    if type(parser) is _AsyncHiredisParser and parser._connected:  # noqa: SLF001
        return parser._reader.gets(False)  # type: ignore[attr-defined]  # noqa: SLF001, FBT003 (decode)
    return NOT_ENOUGH_DATA


def _is_link_failure(reply: Any) -> bool:
    """A reply that read_response raises and disconnects for (LOADING and the like)."""
    if isinstance(reply, list) and reply:
        reply = reply[0]
    return isinstance(reply, RedisConnectionError)
