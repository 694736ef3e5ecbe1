"""What adapters/redis/connection.py relies on in redis-py beyond its documented client API.

The batcher drives a pooled connection by hand (see that module's docstring). None of these
calls, attributes or behaviours is promised across redis-py releases, so each is pinned here:
the exact calls the adapter makes must bind to the installed signatures, the attributes must be
there, and a real round trip against the tests' own redis-server must behave as the adapter
assumes. A failure here after a redis-py upgrade names what changed, before a subtler failure
in the repository tests (or in production) does.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import BusyLoadingError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

import adapters.redis
from adapters.redis.connection import DedicatedConnection, LinkError, ReplyError, configured_timeout
from adapters.redis.protocol import pack

pytestmark = pytest.mark.integration

PACKAGE = Path(adapters.redis.__file__).parent
UNKNOWN_SHA = b"0" * 40
# Lua that keeps Redis busy for ARGV[1] microseconds before it answers 'done'.
SLOW_LUA = b"""
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1])
return 'done'
"""


def binds(function: Callable[..., Any], *args: object, **kwargs: object) -> None:
    """Fail unless `function` accepts exactly this call (with a placeholder for self)."""
    try:
        inspect.signature(function).bind(None, *args, **kwargs)
    except TypeError as error:
        pytest.fail(
            f"{function.__qualname__}{inspect.signature(function)} no longer takes this call: {error}"
        )


# --- the shapes: signatures, attributes, exception classes -----------------------------------


@pytest.mark.parametrize(
    ("function", "args", "kwargs"),
    [
        (ConnectionPool.get_connection, (), {}),
        (ConnectionPool.release, (object(),), {}),
        (AbstractConnection.send_packed_command, (b"*1\r\n$4\r\nPING\r\n",), {"check_health": False}),
        (AbstractConnection.read_response, (), {"disable_decoding": True, "timeout": math.inf}),
        (AbstractConnection.can_read, (), {}),
        (AbstractConnection.check_health, (), {}),
        (AbstractConnection.connect, (), {}),
        (AbstractConnection.disconnect, (), {}),
        (AbstractConnection.disconnect, (), {"nowait": True}),
    ],
    ids=lambda value: getattr(value, "__qualname__", None),
)
def test_the_calls_the_adapter_makes_bind_and_are_coroutines(
    function: Callable[..., Any], args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    binds(function, *args, **kwargs)
    assert inspect.iscoroutinefunction(function), f"{function.__qualname__} is no longer async"


def test_the_keyword_arguments_keep_their_defaults() -> None:
    # The adapter passes these explicitly; a renamed or repurposed one must not pass silently.
    read = inspect.signature(AbstractConnection.read_response).parameters
    assert read["disable_decoding"].default is False
    assert read["timeout"].default is None
    send = inspect.signature(AbstractConnection.send_packed_command).parameters
    assert send["check_health"].default is True
    assert inspect.signature(AbstractConnection.disconnect).parameters["nowait"].default is False


def test_the_attributes_and_exception_classes_are_there() -> None:
    assert isinstance(inspect.getattr_static(AbstractConnection, "is_connected"), property)
    # Where the buffered replies are read from (connection._parser._reader, a hiredis Reader).
    assert "_reader" in _AsyncHiredisParser.__slots__
    assert issubclass(BusyLoadingError, RedisConnectionError)
    assert issubclass(NoScriptError, ResponseError)
    assert issubclass(ResponseError, RedisError)
    pool = ConnectionPool.from_url("redis://127.0.0.1:1/0", socket_timeout=1.5)
    client = redis.asyncio.Redis(connection_pool=pool)
    assert client.connection_pool is pool
    assert pool.connection_kwargs["socket_timeout"] == 1.5
    assert configured_timeout(client) == 1.5
    connection = pool.make_connection()  # type: ignore[no-untyped-call]
    assert connection.socket_timeout == 1.5  # what the adapter switches off and restores
    assert connection.is_connected is False


def test_no_other_module_of_the_package_imports_redis_py() -> None:
    importers = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name == "redis" or name.startswith("redis.") for name in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["connection.py"]


# --- the behaviours, against a real server ---------------------------------------------------


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ConnectionPool]:
    # decode_responses=True, so that undecoded replies show that disable_decoding still works.
    pool = ConnectionPool.from_url(redis_url, socket_timeout=0.2, decode_responses=True)
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
def raw(raw_redis: redis.asyncio.Redis) -> redis.asyncio.Redis:
    return raw_redis


async def read(connection: AbstractConnection) -> Any:
    return await connection.read_response(disable_decoding=True, timeout=math.inf)


async def test_a_pipeline_round_trip_with_undecoded_replies_and_error_replies(pool: ConnectionPool) -> None:
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert connection.is_connected
        commands = [
            pack(b"SET", b"internals:k", b"v"),
            pack(b"GET", b"internals:k"),
            pack(b"EVALSHA", UNKNOWN_SHA, b"0"),
            pack(b"HGET", b"internals:k", b"f"),
            pack(b"PING"),
        ]
        await connection.send_packed_command(b"".join(commands), check_health=False)
        assert await read(connection) == b"OK"
        assert await read(connection) == b"v"
        with pytest.raises(NoScriptError):
            await read(connection)
        with pytest.raises(ResponseError, match="WRONGTYPE") as raised:
            await read(connection)
        assert not isinstance(raised.value, NoScriptError)
        assert await read(connection) == b"PONG"
        assert not await connection.can_read()  # nothing left over between round trips
    finally:
        await pool.release(connection)


async def test_timeout_inf_outlasts_the_socket_timeout(pool: ConnectionPool) -> None:
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert connection.socket_timeout == 0.2
        await connection.send_packed_command(pack(b"EVAL", SLOW_LUA, b"0", b"500000"), check_health=False)
        started = time.monotonic()
        assert await read(connection) == b"done"  # not None, not a TimeoutError after 0.2 s
        assert time.monotonic() - started > 0.3
    finally:
        await pool.release(connection)


async def test_a_read_cancelled_half_way_drops_the_socket(pool: ConnectionPool) -> None:
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack(b"EVAL", SLOW_LUA, b"0", b"300000"), check_health=False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await read(connection)
        assert not connection.is_connected  # its late reply can never be read as another's
        await asyncio.sleep(0.35)  # until the script is done: Redis answers nobody meanwhile
        await connection.connect()
        await connection.send_packed_command(pack(b"PING"), check_health=False)
        assert await read(connection) == b"PONG"
    finally:
        await pool.release(connection)


async def test_a_socket_closed_by_the_server_is_readable_and_reconnects(
    pool: ConnectionPool, raw: redis.asyncio.Redis
) -> None:
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack(b"CLIENT", b"ID"), check_health=False)
        client_id = await read(connection)
        assert await raw.client_kill_filter(_id=client_id) == 1
        await asyncio.sleep(0.05)
        assert await connection.can_read()  # EOF counts as readable
        await connection.disconnect()
        await connection.connect()
        await connection.send_packed_command(pack(b"PING"), check_health=False)
        assert await read(connection) == b"PONG"
    finally:
        await pool.release(connection)


async def test_check_health_pings_only_after_the_interval(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async def pings() -> int:
        stats = await raw.info("commandstats")
        return int(stats.get("cmdstat_ping", {}).get("calls", 0))

    pool = ConnectionPool.from_url(redis_url, health_check_interval=0.2)
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack(b"PING"), check_health=False)
        await read(connection)  # a reply pushes the next health check back by the interval
        before = await pings()
        await connection.check_health()
        assert await pings() == before
        await asyncio.sleep(0.3)
        await connection.check_health()
        assert await pings() == before + 1
    finally:
        await pool.release(connection)
        await pool.aclose()


async def test_the_dedicated_connection_end_to_end(pool: ConnectionPool, raw: redis.asyncio.Redis) -> None:
    client = redis.asyncio.Redis(connection_pool=pool)
    dedicated = DedicatedConnection(client)
    await dedicated.ready()
    commands = [pack(b"CLIENT", b"ID"), pack(b"EVALSHA", UNKNOWN_SHA, b"0"), pack(b"HGET", b"x", b"f")]
    await raw.set(b"x", b"a string")
    await dedicated.send(b"".join(commands))
    client_id, missing, wrong_type = await dedicated.read(len(commands))
    assert isinstance(missing, ReplyError)
    assert missing.missing_script
    assert isinstance(wrong_type, ReplyError)
    assert not wrong_type.missing_script
    assert "WRONGTYPE" in str(wrong_type)
    # A restart or a kill between round trips: ready() notices and reconnects.
    await raw.client_kill_filter(_id=client_id)
    await asyncio.sleep(0.05)
    await dedicated.ready()
    await dedicated.send(pack(b"CLIENT", b"ID"))
    assert await dedicated.read(1) != [client_id]
    await dedicated.release()  # back to the pool with the pool's own socket timeout
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert connection.socket_timeout == 0.2
    finally:
        await pool.release(connection)


async def test_replies_already_read_are_taken_from_the_hiredis_reader(
    pool: ConnectionPool, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rest of a pipeline comes out of the parser's buffer (read_response only for what is
    not read yet), error replies in the middle included, the same replies as read_response's."""
    dedicated = DedicatedConnection(redis.asyncio.Redis(connection_pool=pool))
    await dedicated.ready()
    await raw.set(b"y", b"a string")
    calls = 0
    original = AbstractConnection.read_response

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "read_response", counted)
    commands = [
        pack(b"PING"),
        pack(b"EVALSHA", UNKNOWN_SHA, b"0"),
        pack(b"HGET", b"y", b"f"),
        pack(b"GET", b"y"),
        pack(b"EVAL", b"return {1, 'two', {3}}", b"0"),
    ]
    try:
        await dedicated.send(b"".join(commands))
        await asyncio.sleep(0.05)  # every reply is in the socket before the first is read
        pong, missing, wrong_type, value, nested = await dedicated.read(len(commands))
    finally:
        await dedicated.release()
    assert calls == 1, f"read_response was called {calls} times for {len(commands)} replies"
    assert pong == b"PONG"
    assert isinstance(missing, ReplyError)
    assert missing.missing_script
    assert isinstance(wrong_type, ReplyError)
    assert not wrong_type.missing_script
    assert "WRONGTYPE" in str(wrong_type)
    assert value == b"a string"  # undecoded, although the pool decodes responses
    assert nested == [1, b"two", [3]]


async def test_a_loading_reply_in_the_buffer_drops_the_link_as_read_response_does() -> None:
    """Redis answers -LOADING while it loads its data set; redis-py raises it as a connection
    error and drops the socket. A peer that answers a pipeline with +PONG, then -LOADING."""

    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while chunk := await reader.read(65536):  # until the client goes
            if b"PING" in chunk:  # the test's pipeline
                writer.write(b"+PONG\r\n-LOADING Redis is loading the dataset in memory\r\n")
            else:  # redis-py's handshake on connect: +OK to each command
                commands = sum(line.startswith(b"*") for line in chunk.split(b"\r\n"))
                writer.write(b"+OK\r\n" * commands)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2.0)
    dedicated = DedicatedConnection(redis.asyncio.Redis(connection_pool=pool))
    try:
        await dedicated.ready()
        await dedicated.send(pack(b"PING") + pack(b"PING"))
        await asyncio.sleep(0.05)
        with pytest.raises(LinkError, match="loading"):
            await dedicated.read(2)
        await dedicated.ready()
        assert connections == 2, "the socket was kept: the next round trip did not reconnect"
    finally:
        await dedicated.release()
        await pool.aclose()
        server.close()
        await server.wait_closed()


async def test_a_refused_connection_is_a_link_error() -> None:
    pool = ConnectionPool.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    dedicated = DedicatedConnection(redis.asyncio.Redis(connection_pool=pool))
    try:
        with pytest.raises(LinkError, match="ConnectionError"):
            await dedicated.ready()
    finally:
        await pool.aclose()
