"""`counter serve` as a subprocess with real sockets: nothing lost across workers and restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import running_server

pytestmark = pytest.mark.integration

REQUESTS = 2000
IN_FLIGHT = 32


async def hammer(url: str, requests: int = REQUESTS, in_flight: int = IN_FLIGHT) -> list[int]:
    """POST `requests` times with `in_flight` at once; return every status code."""
    statuses: list[int] = []
    remaining = iter(range(requests))
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            for _ in remaining:
                response = await client.post("/counter")
                statuses.append(response.status_code)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return statuses


async def final_count(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as client:
        count: int = (await client.get("/counter")).json()["count"]
        return count


def backend_env(backend: str, tmp_path: Path, redis_url: str) -> dict[str, str]:
    if backend == "sqlite":
        return {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "e2e.db")}
    return {
        "COUNTER_BACKEND": "redis",
        "COUNTER_REDIS_URL": redis_url,
        "COUNTER_REDIS_PREFIX": f"e2e-{tmp_path.name}:",
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_two_workers_count_every_post_exactly_once(
    backend: str, tmp_path: Path, redis_url: str
) -> None:
    env = backend_env(backend, tmp_path, redis_url)
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        statuses = await hammer(server.url)
        count = await final_count(server.url)
    assert statuses.count(200) == REQUESTS, {s: statuses.count(s) for s in set(statuses)}
    assert count == statuses.count(200)


async def test_sqlite_count_survives_a_restart(tmp_path: Path) -> None:
    env = {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "restart.db")}
    with running_server(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(3):
                assert (await client.post("/counter")).status_code == 200
            body = (await client.get("/counter")).json()
            assert (body["name"], body["count"]) == ("default", 3)
            keyed = await client.post("/counters/k", headers={"Idempotency-Key": "restart-key"})
    with running_server(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/counter")).json()["count"] == 3
            replay = await client.post("/counters/k", headers={"Idempotency-Key": "restart-key"})
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json() == keyed.json()


async def test_json_logs_and_request_id_over_a_real_socket(tmp_path: Path) -> None:
    env = {
        "COUNTER_BACKEND": "memory",
        "COUNTER_LOG_FORMAT": "json",
        "COUNTER_ACCESS_LOG": "true",
    }
    log_path = tmp_path / "server.log"
    with running_server(env, log_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/counter", headers={"X-Request-ID": "e2e-rid-7"})
            assert response.headers["x-request-id"] == "e2e-rid-7"
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "e2e-rid-7"]
    assert access, log_path.read_text()
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/counter"


async def test_lean_layer_and_handler_share_one_count_over_a_real_socket(tmp_path: Path) -> None:
    """Bodies the increment route's lean layer serves and bodies it hands on to the handler
    (chunked, not strictly JSON, too large), through uvicorn's own HTTP parser: each counted
    once or refused."""
    env = {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "paths.db")}
    with running_server(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:

            async def chunked() -> AsyncIterator[bytes]:
                yield b'{"by":'
                yield b" 4}"

            as_json = {"content-type": "application/json"}
            answers = [
                # the lean layer: +1, +2
                await client.post("/counters/mix"),
                await client.post("/counters/mix", json={"by": 2}),
                # no length: the handler, +4
                await client.post("/counters/mix", content=chunked(), headers=as_json),
                # refused by both, strictly: not an integer (400), no Content-Type (415), too large (413)
                await client.post("/counters/mix", content=b'{"by": 8.0}', headers=as_json),
                await client.post("/counters/mix", content=b'{"by": 8}'),
                await client.post("/counters/mix", content=b'{"by": 1}' + b" " * 5000, headers=as_json),
            ]
            count = (await client.get("/counters/mix")).json()["count"]
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 415, 413]
    assert [a.json().get("count") for a in answers[:3]] == [1, 3, 7]
    assert count == 7
