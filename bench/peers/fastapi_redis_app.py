"""The peer: what a counter service on the common stack looks like (FastAPI + redis-py, INCR).

Run by the harness as `uvicorn bench.peers.fastapi_redis_app:app --loop uvloop --http httptools`
with one worker; PEER_REDIS_URL says which Redis. `GET /health/live` exists so that the harness
can drain its in-flight POSTs with a request that changes nothing (see bench/wrk_counter.lua).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
from fastapi import FastAPI, Request

KEY = "peer:counter"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client = redis.asyncio.Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.state.redis = client
    try:
        yield
    finally:
        await client.aclose()


app = FastAPI(lifespan=lifespan)


def _client(request: Request) -> redis.asyncio.Redis:
    client: redis.asyncio.Redis = request.app.state.redis
    return client


@app.post("/counter")
async def increment(request: Request) -> dict[str, int]:
    return {"count": await _client(request).incr(KEY)}


@app.get("/counter")
async def read(request: Request) -> dict[str, int]:
    value = await _client(request).get(KEY)
    return {"count": int(value or 0)}


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}
