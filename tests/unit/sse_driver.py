"""An ASGI client for event streams: the app is called as a server calls it, so the body arrives
chunk by chunk while the stream is open, the client can go away (`http.disconnect`) or stop
reading (its `send` blocks), which a buffering test client cannot do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
ASGIApp = Any  # the app as a server calls it: scope, receive, send


@dataclass
class Event:
    id: int | None
    data: dict[str, Any] | None
    comment: str | None = None
    retry: int | None = None


def parse_events(text: str) -> list[Event]:
    events = []
    for block in text.split("\r\n\r\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\r\n"):
            name, _, value = line.partition(": ")
            fields[name] = value
        events.append(
            Event(
                id=int(fields["id"]) if "id" in fields else None,
                data=json.loads(fields["data"]) if "data" in fields else None,
                comment=fields.get(""),
                retry=int(fields["retry"]) if "retry" in fields else None,
            )
        )
    return events


@dataclass
class RawStream:
    app: ASGIApp
    path: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    ended: bool = False
    _text: str = ""
    _chunks: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    _gone: asyncio.Event = field(default_factory=asyncio.Event)
    reading: asyncio.Event = field(default_factory=asyncio.Event)  # clear it: the client stops reading
    _pending: list[Event] = field(default_factory=list)
    _request_sent: bool = False
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawStream:  # noqa: PYI034
        self.reading.set()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test"), *self.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
            "state": {},
        }
        self._task = asyncio.get_running_loop().create_task(self.app(scope, self._receive, self._send))
        await asyncio.wait_for(self._started.wait(), 10)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.disconnect()

    async def disconnect(self) -> None:
        """The client goes away; returns once the app has finished with the request."""
        self._gone.set()
        self.reading.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def _receive(self) -> Message:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
            self._started.set()
            return
        await self.reading.wait()
        if message.get("body"):
            self._chunks.put_nowait(message["body"])
        if not message.get("more_body", False):
            self.ended = True
            self._chunks.put_nowait(b"")
            self._gone.set()  # as uvicorn does: once the answer is complete, receive() says so

    async def events(self, count: int, *, data_only: bool = True) -> list[Event]:
        """The next `count` events (those with data, unless `data_only` is False)."""
        found, self._pending = self._pending, []
        while len(found) < count:
            chunk = await asyncio.wait_for(self._chunks.get(), 10)
            if not chunk:
                raise AssertionError(f"the stream ended after {found}")
            self._text += chunk.decode()
            complete, _, self._text = self._text.rpartition("\r\n\r\n")
            found += [e for e in parse_events(complete) if e.data is not None or not data_only]
        found, self._pending = found[:count], found[count:]
        return found

    async def rest(self) -> str:
        """Everything sent until the stream ends."""
        parts = [self._text]
        while True:
            chunk = await asyncio.wait_for(self._chunks.get(), 10)
            if not chunk:
                return "".join(parts)
            parts.append(chunk.decode())


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[None]:
    """The app's lifespan, run as a server runs it: in a task of its own."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.get_running_loop().create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 10)
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 10)
        await asyncio.wait_for(task, 10)
