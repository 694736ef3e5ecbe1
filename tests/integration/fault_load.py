"""Helpers of the fault tests: a Redis of their own that keeps its data across a SIGKILL, clients
that send keyed increments to a real `counter serve` and remember what each key was answered, and
the RSS of a process. Everything runs on 127.0.0.1 and is bounded in time and in count."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.server_process import free_port

PROBLEM_PREFIX = "urn:counter-web-server:problem:"
# What `open_redis_repository` bounds each stage of a round trip with (connecting; the write and
# its reply). Against a hung Redis a request waits for the round trip in flight (its reply times
# out, the socket is dropped), then for its own, whose connection cannot be made.
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_503_BOUND_SECONDS = 2 * REDIS_TIMEOUT_SECONDS + 1.0  # and a loaded machine's second


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The child processes of `pid` (the workers of a `counter serve --workers N`)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


class PersistentRedis:
    """`redis-server` on a port of its own, with every acknowledged write fsynced to its
    append-only file first (appendfsync always), so that a SIGKILL loses none and a restart on
    the same port and directory comes back with them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    executable,
                    *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
                    *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
                    *("--daemonize", "no"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _answers_ping(self.port):
                return
            time.sleep(0.05)
        log_text = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}:\n{log_text}")

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone (its port is free again)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a stopped server cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _answers_ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def persistent_redis(directory: Path) -> Iterator[PersistentRedis]:
    server = PersistentRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: an HTTP status and problem type, or the exception's class name."""

    key: str
    status: int | None  # None: no HTTP answer (refused, reset, closed)
    kind: str  # "200", "503 outcome-unknown", ..., or "ConnectError", "RemoteProtocolError"...
    seconds: float
    sent_at: float  # time.monotonic() when sent
    retry_after: str | None = None
    replayed: bool = False


def describe(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        problem_type = str(response.json().get("type", ""))
        return f"{response.status_code} {problem_type.removeprefix(PROBLEM_PREFIX)}"
    return str(response.status_code)


async def increment(client: httpx.AsyncClient, path: str, key: str) -> Answer:
    started = time.monotonic()
    try:
        response = await client.post(path, headers={"Idempotency-Key": key})
    except httpx.TransportError as error:
        return Answer(key, None, type(error).__name__, time.monotonic() - started, started)
    return Answer(
        key,
        response.status_code,
        describe(response),
        time.monotonic() - started,
        started,
        response.headers.get("retry-after"),
        response.headers.get("idempotent-replayed") == "true",
    )


@dataclass
class Load:
    """`clients` tasks sending keyed increments to `path` one after the other, each with a key
    never used before, until `stop()` or `max_requests` in all."""

    url: str
    path: str
    clients: int = 8
    max_requests: int = 40_000
    answers: list[Answer] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        prefix = uuid.uuid4().hex[:8]
        self._tasks = [asyncio.create_task(self._client(f"{prefix}-{n}")) for n in range(self.clients)]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, prefix: str) -> None:
        timeout = httpx.Timeout(15.0)
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as client:
            while not self._stopping.is_set() and len(self.answers) < self.max_requests:
                answer = await increment(client, self.path, f"{prefix}-{next(self._numbers)}")
                self.answers.append(answer)
                if answer.status is None:
                    await asyncio.sleep(0.01)  # no server: do not spin

    def kinds(self) -> Counter[str]:
        return Counter(answer.kind for answer in self.answers)


async def retry_each(url: str, path: str, keys: list[str], clients: int = 8) -> list[Answer]:
    """Send each key again (same counter, same amount), `clients` at a time."""
    answers: list[Answer] = []
    queue = list(keys)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=15.0) as http:
            while queue:
                answers.append(await increment(http, path, queue.pop()))

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


async def read_count(url: str, path: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=15.0) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count
