"""A real Redis for the tests: a testcontainers container where a Docker engine answers, else a
local `redis-server` subprocess on a free port. Neither persists anything.

Fixtures: `redis_server` (session: `.url`, `.port`, `.stop()`, `.start()` on the same port),
`redis_url` (function: the URL, restarting the server if a test left it stopped), `redis_prefix`
(function: a key prefix of the test's own) and `redis_repository` (function: an open
RedisCounterRepository on both). tests/integration/conftest.py imports them for every
integration test, after `pytest.register_assert_rewrite("tests.integration.redis_fixtures")`:
a module imported before pytest is told about it keeps plain asserts, a warning, so an error.
Test modules import anything else from here only under TYPE_CHECKING.

`COUNTER_TEST_REDIS=local|docker` forces one way (the default, `auto`, tries Docker first).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis.asyncio

from adapters.redis import RedisCounterRepository, open_redis_repository
from tests.integration.server_process import free_port

_START_TIMEOUT = 15.0
_REDIS_IMAGE = "redis:7-alpine"
_NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]


class RedisServer(Protocol):
    """A Redis server that a test may stop and start again on the same port (its data is lost)."""

    @property
    def url(self) -> str: ...

    @property
    def port(self) -> int: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...

    def is_running(self) -> bool: ...


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _wait_for_ping(host: str, port: int, what: str, alive: Any = None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers_ping(host, port):
            return
        if alive is not None and not alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer PING on {host}:{port}")


class LocalRedisServer:
    """`redis-server` as a child process, bound to 127.0.0.1 on a port of its own."""

    def __init__(self, executable: str, port: int, directory: Path) -> None:
        self._executable = executable
        self._port = port
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self.is_running():
            return
        log = (self._directory / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [
                    self._executable,
                    "--port",
                    str(self._port),
                    "--bind",
                    "127.0.0.1",
                    *_NO_PERSISTENCE,
                    "--dir",
                    str(self._directory),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self._process
        try:
            _wait_for_ping("127.0.0.1", self._port, "redis-server", alive=lambda: process.poll() is None)
        except RuntimeError as exc:
            self.stop()
            log_text = (self._directory / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; its log ends with:\n{log_text}") from None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None


class ContainerRedisServer:
    """A testcontainers `RedisContainer` with its port bound to a fixed host port, so that it
    comes back on the same port after `stop()`/`start()`."""

    def __init__(self, port: int) -> None:
        from testcontainers.community.redis import RedisContainer

        self._container = (
            RedisContainer(_REDIS_IMAGE)
            .with_bind_ports(6379, port)
            .with_command(["redis-server", *_NO_PERSISTENCE])
        )
        self._container.start()
        self._host: str = self._container.get_container_host_ip()
        self._port: int = int(self._container.get_exposed_port(6379))
        self._running = True

    @property
    def url(self) -> str:
        return f"redis://{self._host}:{self._port}/0"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if not self._running:
            self._container.get_wrapped_container().start()
            _wait_for_ping(self._host, self._port, "the Redis container")
            self._running = True

    def stop(self) -> None:
        if self._running:
            self._container.get_wrapped_container().stop(timeout=5)
            self._running = False

    def is_running(self) -> bool:
        return self._running

    def remove(self) -> None:
        self._container.stop()


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping within a couple of seconds."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    # docker-py leaks a socket when the engine is unreachable; keep that out of the test run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # any failure means: no usable engine
            return False
        finally:
            gc.collect()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the whole session, torn down at the end."""
    mode = os.environ.get("COUNTER_TEST_REDIS", "auto")
    if mode not in {"auto", "docker", "local"}:
        pytest.fail(f"COUNTER_TEST_REDIS must be auto, docker or local, not {mode!r}")
    docker = mode != "local" and _docker_answers()
    if mode == "docker" and not docker:
        pytest.fail(
            "COUNTER_TEST_REDIS=docker, but no Docker engine answers (DOCKER_HOST, /var/run/docker.sock)"
        )
    if docker:
        container = ContainerRedisServer(free_port())
        try:
            yield container
        finally:
            container.remove()
        return
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(executable).exists():
        pytest.fail(
            "no Redis for the integration tests: no Docker engine answers and `redis-server` is not"
            " on PATH (install it: apt-get install -y redis-server)"
        )
    with tempfile.TemporaryDirectory(prefix="counter-redis-") as directory:
        server = _start_local(executable, Path(directory))
        try:
            yield server
        finally:
            server.stop()


def _start_local(executable: str, directory: Path) -> LocalRedisServer:
    # A free port can be taken between the probe and redis-server's bind: try a few.
    last: RuntimeError | None = None
    for _ in range(3):
        server = LocalRedisServer(executable, free_port(), directory)
        try:
            server.start()
        except RuntimeError as exc:
            last = exc
        else:
            return server
    raise RuntimeError(f"could not start redis-server: {last}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, after making sure it runs (a test may have stopped it)."""
    if not redis_server.is_running():
        redis_server.start()
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so that tests never see each other's keys."""
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_repository(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisCounterRepository]:
    """A RedisCounterRepository on the test server under the test's own prefix."""
    async with contextlib.asynccontextmanager(open_redis_repository)(redis_url, redis_prefix) as repository:
        yield repository


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the test server, to look at and tamper with the keys behind a
    repository's back."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
