"""The ceiling: a bare ASGI app (no framework, no store) that answers `POST /counter` with a fixed
small JSON body, served by the same server with the same flags as `counter serve`.

What it measures is the cost of the server itself (uvicorn with uvloop and httptools, or granian)
on this machine: no app on that server answers faster, so the service's requests/s are read as a
share of it. It also answers `GET /health/live` (`{"status":"alive"}`: bench/wrk_counter.lua
drains with it) and `GET /health/ready`; anything else is a 404.

Run by the harness (bench/servers.py) as `python -m bench.peers.bare_asgi` with the COUNTER_*
variables of a `counter serve` (host, port, 1 worker, COUNTER_SERVER, access log off). It runs
`counter serve` itself (`entrypoints.cli.main(["serve"])`) with the app factory it loads swapped
for `app_factory` below: the server and every flag it is given are those of the service, by
construction, whatever src/entrypoints/cli.py passes today. The call it makes is written on
stderr (CALL_PREFIX), and the harness reports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

FACTORY = "bench.peers.bare_asgi:app_factory"
# The line (on stderr) that says how the server was called: the harness reports it.
CALL_PREFIX = "BENCH_SERVER_CALL "

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _answer(status: int, body: bytes) -> tuple[Message, Message]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


# The size of the service's answer to an unkeyed increment ({"name":"default","count":N}).
_ROUTES: dict[tuple[str, str], tuple[Message, Message]] = {
    ("POST", "/counter"): _answer(200, b'{"name":"default","count":1}'),
    ("GET", "/health/live"): _answer(200, b'{"status":"alive"}'),
    ("GET", "/health/ready"): _answer(200, b'{"status":"ready","store":"none"}'),
}
_NOT_FOUND = _answer(404, b'{"title":"Not Found","status":404}')


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # the body is read, as any app reads it
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = bool(message.get("more_body", False))
    start, body = _ROUTES.get((scope["method"], scope["path"]), _NOT_FOUND)
    await send(start)
    await send(body)


def app_factory() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """What `counter serve` loads here instead of its own app factory."""
    return app


def _recording(server: str, real: Callable[..., Any]) -> Callable[..., Any]:
    """`real` (entrypoints.uvicorn_server.run, granian's Server), which first writes on stderr how
    it is called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        sys.stderr.write(f"{CALL_PREFIX}{json.dumps({'server': server, 'call': ', '.join(shown)})}\n")
        sys.stderr.flush()
        return real(*args, **kwargs)

    return call


def main(argv: Sequence[str] | None = None) -> int:
    """`counter serve` itself, its app factory swapped for `app_factory`; COUNTER_* variables
    configure it as they configure the service (COUNTER_SERVER picks the server)."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers.bare_asgi", description=__doc__)
    parser.parse_args(argv)
    from entrypoints import cli

    if not isinstance(getattr(cli, "APP_FACTORY", None), str):
        sys.stderr.write("bare_asgi: entrypoints.cli has no APP_FACTORY to swap: the ceiling cannot start\n")
        return 2
    from entrypoints import uvicorn_server

    # What counter serve calls to run uvicorn (with its connection limits), not uvicorn.run.
    uvicorn_server.run = _recording("uvicorn", uvicorn_server.run)
    try:
        import granian.server
    except ImportError:
        pass
    else:
        # granian is optional here: typed where it is installed, Any where it is not
        granian.server.Server = _recording("granian", granian.server.Server)  # type: ignore[assignment,unused-ignore]
    cli.APP_FACTORY = FACTORY
    return cli.main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
