"""Live updates over sockets: two real `counter serve` processes on one store (an SQLite file,
our own redis-server, the emulated Kubernetes API), an SSE client on one and the increments
POSTed to the other.

The client waits for each event before the next POST, so each increment must arrive as its own
event, in order: that checks the signal of each store change by change. (Unwaited bursts may
arrive coalesced to their last state on SQLite and the ConfigMap, as the README says; the unit
tests check that no state is sent twice or out of order.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.configmap_fixtures import KubeTarget
from tests.integration.server_process import Server, running_server

pytestmark = pytest.mark.integration

INCREMENTS = 20
WAIT = 20.0  # the longest any one event may take to come; a bound, not a measure


@dataclass
class Event:
    id: int
    data: dict[str, Any]


class SseClient:
    """Reads the events of one stream (httpx streaming), and says when the server ended it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.retry: int | None = None
        self.pings = 0

    async def next_event(self) -> Event:
        fields: dict[str, str] = {}
        async with asyncio.timeout(WAIT):
            async for line in self._lines:
                if line:
                    name, _, value = line.partition(": ") if not line.startswith(":") else ("", "", line)
                    fields[name] = value
                    continue
                if "data" in fields:
                    return Event(int(fields["id"]), json.loads(fields["data"]))
                if "retry" in fields:
                    self.retry = int(fields["retry"])
                if "" in fields:
                    self.pings += 1
                fields = {}
        raise EOFError("the server ended the stream")

    async def until_end(self) -> None:
        async with asyncio.timeout(WAIT):
            async for _line in self._lines:
                pass


@contextlib.asynccontextmanager
async def sse(
    http: httpx.AsyncClient, path: str, last_event_id: int | None = None
) -> AsyncIterator[SseClient]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseClient(response)


def open_streams(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("counter_event_streams_open "):
            return float(line.split()[1])
    raise AssertionError("no counter_event_streams_open in /metrics")


def wait_for_open_streams(server: Server, wanted: float) -> float:
    deadline = time.monotonic() + WAIT
    seen = open_streams(server)
    while seen != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = open_streams(server)
    return seen


@pytest.fixture(params=["sqlite", "redis", "configmap"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    backend: str = request.param
    if backend == "sqlite":
        return {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "counters.db")}
    if backend == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        return {
            "COUNTER_BACKEND": "redis",
            "COUNTER_REDIS_URL": redis_url,
            "COUNTER_REDIS_PREFIX": f"ev-{tmp_path.name}:",
        }
    kube: KubeTarget = request.getfixturevalue("kube")
    return {
        "COUNTER_BACKEND": "configmap",
        "COUNTER_KUBECONFIG": kube.kubeconfig,
        "COUNTER_CONFIGMAP_NAME": request.getfixturevalue("cm_name"),
        "COUNTER_CONFIGMAP_NAMESPACE": kube.namespace,
    }


@contextlib.contextmanager
def two_servers(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with (
        running_server(env, tmp_path / "watching.log") as watching,
        running_server(env, tmp_path / "writing.log") as writing,
    ):
        yield watching, writing


async def test_a_stream_on_one_process_sees_each_increment_made_through_another(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    with two_servers(store_env, tmp_path) as (watching, writing):
        async with (
            httpx.AsyncClient(base_url=watching.url, timeout=WAIT) as reader,
            httpx.AsyncClient(base_url=writing.url, timeout=WAIT) as writer,
        ):
            assert (await writer.post("/namespaces/live/counters/visits")).status_code == 200
            async with sse(reader, "/namespaces/live/counters/visits/events") as stream:
                first = await stream.next_event()
                assert stream.retry is not None
                assert first.data == {"namespace": "live", "key": "visits", "value": 1, "version": first.id}
                seen = [first]
                delays = []
                for n in range(2, INCREMENTS + 2):
                    assert (await writer.post("/namespaces/live/counters/visits")).status_code == 200
                    answered = time.monotonic()
                    seen.append(await stream.next_event())
                    delays.append(time.monotonic() - answered)
                    assert seen[-1].data["value"] == n, seen
                assert wait_for_open_streams(watching, 1) == 1
            delays.sort()
            print(
                f"{store_env['COUNTER_BACKEND']}: from the POST's answer to the event on the other"
                f" process: median {delays[len(delays) // 2] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
            )
            versions = [event.id for event in seen]
            assert versions == sorted(set(versions)), versions  # strictly growing, no duplicate
            assert all(event.id == event.data["version"] for event in seen)
            # The client went away: its slot is free again.
            assert wait_for_open_streams(watching, 0) == 0

            # Back with the id of the first event: the current state comes at once.
            async with sse(
                reader, "/namespaces/live/counters/visits/events", last_event_id=first.id
            ) as again:
                current = await again.next_event()
            assert current.data["value"] == INCREMENTS + 1
            assert current.id == versions[-1]


def test_past_the_cap_503_and_a_client_that_leaves_frees_its_slot(tmp_path: Path) -> None:
    env = {
        "COUNTER_BACKEND": "sqlite",
        "COUNTER_SQLITE_PATH": str(tmp_path / "counters.db"),
        "COUNTER_EVENTS_MAX_STREAMS": "3",
    }

    async def scenario(server: Server) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            async with contextlib.AsyncExitStack() as stack:
                held = [
                    await stack.enter_async_context(sse(http, "/counters/capped/events")) for _ in range(3)
                ]
                for stream in held:  # kept: a client dropped here would close its stream
                    await stream.next_event()
                refused = await http.get("/counters/capped/events")
                assert refused.status_code == 503
                assert refused.headers["retry-after"].isdigit()
                assert refused.json()["type"].endswith(":too-many-streams")
            assert wait_for_open_streams(server, 0) == 0
            async with sse(http, "/counters/capped/events") as stream:
                assert (await stream.next_event()).data["value"] == 0

    with running_server(env, tmp_path / "server.log") as server:
        asyncio.run(scenario(server))


def test_sigterm_with_100_open_streams_ends_them_and_exits_within_the_grace_period(tmp_path: Path) -> None:
    streams = 100
    grace = 20
    env = {
        "COUNTER_BACKEND": "sqlite",
        "COUNTER_SQLITE_PATH": str(tmp_path / "counters.db"),
        "COUNTER_SHUTDOWN_TIMEOUT_SECONDS": str(grace),
    }
    ended: list[bool] = []

    async def hold_streams(server: Server, opened: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT, limits=limits) as http:

            async def one(n: int, ready: list[int]) -> None:
                async with sse(http, f"/counters/held-{n % 10}/events") as stream:
                    await stream.next_event()
                    ready.append(n)
                    if len(ready) == streams:
                        opened.set()
                    await stream.until_end()  # ends when the server ends the stream, cleanly
                    ended.append(True)

            ready: list[int] = []
            await asyncio.gather(*(one(n, ready) for n in range(streams)))

    with running_server(env, tmp_path / "server.log") as server:

        async def scenario() -> float:
            opened = asyncio.Event()
            holding = asyncio.get_running_loop().create_task(hold_streams(server, opened))
            async with asyncio.timeout(60):
                await opened.wait()
            assert open_streams(server) == streams
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await holding
            await asyncio.to_thread(server.process.wait, grace + 10)
            return time.monotonic() - started

        took = asyncio.run(scenario())
        log = server.log()
    assert server.process.returncode == 0, log
    assert len(ended) == streams
    assert "timeout graceful shutdown exceeded" not in log, log
    print(f"SIGTERM with {streams} open streams: exited in {took:.2f}s (grace period {grace}s)")
    assert took < grace, log
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=1)


def test_with_two_workers_the_open_streams_are_summed_and_return_to_0(tmp_path: Path) -> None:
    env = {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "counters.db")}

    async def scenario(server: Server) -> None:
        # One connection per stream: the kernel spreads them over both workers' accept queues.
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            async with contextlib.AsyncExitStack() as stack:
                held = [
                    await stack.enter_async_context(sse(http, f"/counters/w{n}/events")) for n in range(6)
                ]
                for stream in held:
                    await stream.next_event()
                assert await asyncio.to_thread(wait_for_open_streams, server, 6) == 6
                assert (await http.post("/counters/w0")).status_code == 200
                assert (await held[0].next_event()).data["value"] == 1
            assert await asyncio.to_thread(wait_for_open_streams, server, 0) == 0

    with running_server(env, tmp_path / "server.log", workers=2) as server:
        asyncio.run(scenario(server))
