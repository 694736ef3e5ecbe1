"""The increment fast path: it answers exactly like the framework's handlers, and hands on to the
framework every request it does not serve, before the store is touched."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.services import CounterService
from entrypoints.http.fast_path import IncrementFastPath
from entrypoints.http.middleware import Message, Scope
from tests.unit.conftest import make_client

LIMIT = 256

# Requests whose answers the two paths must agree on, byte for byte (timestamps aside).
SAME_ANSWERS: list[tuple[str, bytes, dict[str, str]]] = [
    ("/counter", b"", {}),
    ("/counter", b"null", {}),
    ("/counter", b"{}", {}),
    ("/counter", b'{"by": 2}', {}),
    ("/counter", b'{"by": -3}', {}),
    ("/counter", b'{"by": 1.0}', {}),
    ("/counter", b'{"by": 1, "by": 2}', {}),
    ("/counter", b" ", {}),
    ("/counter", b'{"by": "one"}', {}),
    ("/counter", b'{"by": true}', {}),
    ("/counter", b"{not json", {}),
    ("/counter", b"[1]", {}),
    ("/counter", b'"x"', {}),
    ("/counter", b'{"step": 1}', {}),
    ("/counter", b'{"by": 0}', {}),
    ("/counter", b'{"by": 9223372036854775807}', {}),  # 409: the counter is already above 0
    ("/counter", b'{"by": -9223372036854775808}', {}),
    ("/counter", b'{"by": -9223372036854775808}', {}),  # 409 the other way
    ("/counter", b'{"by": 9223372036854775808}', {}),
    ("/counter", b'{"by": 1}' + b" " * LIMIT, {}),
    ("/counter", b'{"by": 1}', {"content-type": "text/plain"}),
    ("/counter/", b"", {}),
    ("/counters/", b"", {}),
    ("/counters/a/b", b"", {}),
    ("/counters/a.b-c_d", b"", {}),
    ("/counters/-x", b"", {}),
    ("/counters/" + "x" * 64, b"", {}),
    ("/counters/k", b"", {"idempotency-key": "key-1"}),
    ("/counters/k", b"", {"idempotency-key": "key-1"}),
    ("/counters/k", b'{"by": 3}', {"idempotency-key": "key-1"}),
    ("/counters/k", b"", {"idempotency-key": ""}),
    ("/counters/k", b"", {"idempotency-key": "x" * 256}),
]
_VARYING = re.compile(rb'"(created|updated)_at":"[^"]*"')


async def test_the_fast_path_answers_like_the_framework() -> None:
    async with (
        make_client(InMemoryCounterRepository(), max_body_bytes=LIMIT, fast_path=True) as fast,
        make_client(InMemoryCounterRepository(), max_body_bytes=LIMIT, fast_path=False) as framework,
    ):
        for path, body, headers in SAME_ANSWERS:
            answers = []
            for client in (fast, framework):
                response = await client.post(path, content=body, headers=headers)
                kept = {k: v for k, v in response.headers.items() if k not in {"date", "x-request-id"}}
                if "allow" in kept:  # Litestar lists the methods in no fixed order
                    kept["allow"] = ", ".join(sorted(kept["allow"].split(", ")))
                answers.append((response.status_code, kept, _VARYING.sub(b"", response.content)))
            assert answers[0] == answers[1], (path, body, headers)
        counts = [
            {c["name"]: c["count"] for c in (await client.get("/counters")).json()["counters"]}
            for client in (fast, framework)
        ]
        assert counts[0] == counts[1]
        assert counts[0].keys() == {"default", "a.b-c_d", "k"}


class Framework:
    """Stands for Litestar behind the fast path: records what it was handed and answers 299."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        if scope["type"] == "http":
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        self.handed.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: IncrementFastPath,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[Message]:
    if headers is None:
        headers = [(b"content-length", b"%d" % len(body))]
    scope: Scope = {"type": "http", "method": method, "path": path, "headers": headers}
    # The body comes in two parts, as a server may deliver it.
    parts = [body[: len(body) // 2], body[len(body) // 2 :]]

    async def receive() -> Message:
        if parts:
            chunk = parts.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.fixture
def store() -> InMemoryCounterRepository:
    return InMemoryCounterRepository()


@pytest.fixture
def framework() -> Framework:
    return Framework()


@pytest.fixture
def fast_path(store: InMemoryCounterRepository, framework: Framework) -> IncrementFastPath:
    service = CounterService(store)
    return IncrementFastPath(framework, lambda: service, max_body_bytes=LIMIT)


async def test_it_serves_increments_without_the_framework(
    fast_path: IncrementFastPath, framework: Framework, store: InMemoryCounterRepository
) -> None:
    sent = await call(fast_path, "POST", "/counter")
    assert sent[0]["status"] == 200
    assert b'"count":1' in sent[1]["body"]
    await call(fast_path, "POST", "/counters/n", b'{"by": 5}')
    key = [(b"idempotency-key", b"k"), (b"content-length", b"0")]
    first, again = (
        await call(fast_path, "POST", "/counters/n", headers=key),
        await call(fast_path, "POST", "/counters/n", headers=key),
    )
    assert (b"idempotent-replayed", b"true") not in first[0]["headers"]
    assert (b"idempotent-replayed", b"true") in again[0]["headers"]
    assert framework.handed == []
    assert (await store.get("default")).count == 1
    assert (await store.get("n")).count == 6


Request = tuple[str, str, bytes, list[tuple[bytes, bytes]] | None]


@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/counter", b"", None),
        ("PUT", "/counters/a", b'{"count": 1}', None),
        ("POST", "/counter/", b"", None),
        ("POST", "/counters/", b"", None),
        ("POST", "/counters/a/b", b"", None),
        ("POST", "/counter", b" ", None),  # not strict JSON: the framework's message
        ("POST", "/counter", b'{"by": 1.0}', None),  # the framework's lax decoding applies
        ("POST", "/counter", b'{"step": 1}', None),
        ("POST", "/counter", b"x" * (LIMIT + 1), None),  # 413 from the framework
        ("POST", "/counter", b'{"by": 2}', [(b"transfer-encoding", b"chunked")]),
        ("POST", "/counter", b'{"by": 2}', [(b"content-length", b"nine")]),
        ("POST", "/counter", b'{"by": 2}', [(b"content-length", b"9" * 5000)]),
    ],
)
async def test_it_hands_on_what_it_does_not_serve_before_the_store(
    fast_path: IncrementFastPath,
    framework: Framework,
    store: InMemoryCounterRepository,
    request_: Request,
) -> None:
    method, path, body, headers = request_
    sent = await call(fast_path, method, path, body, headers)
    assert sent[0]["status"] == 299
    assert framework.handed == [(method, path, body)]  # with its whole body, read once or not at all
    assert (await store.list(None, 10)).counters == []


async def test_a_client_gone_before_its_body_counts_nothing(
    fast_path: IncrementFastPath, framework: Framework, store: InMemoryCounterRepository
) -> None:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/counter",
        "headers": [(b"content-length", b"8")],
    }
    await fast_path(scope, receive, send)
    assert sent == []
    assert framework.handed == []
    assert (await store.get("default")).count == 0
