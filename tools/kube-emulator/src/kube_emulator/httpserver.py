"""HTTP/1.1 plumbing on the standard library: keep-alive, one write per answer, chunked watches."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from kube_emulator import statuses
from kube_emulator.messages import Headers, Request, Response
from kube_emulator.resources import MAX_BODY

logger = logging.getLogger(__name__)

_PHRASES: Final = {status.value: status.phrase for status in HTTPStatus}
_DISCONNECTS: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

Handle = Callable[[Request], Response]


class ApiHttpServer(ThreadingHTTPServer):
    """A thread per connection; `close_connections` cuts kept-alive clients off when stopping."""

    daemon_threads = True
    request_queue_size = 1024  # benchmarks open many connections at once; the default is 5

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.handle_request_fn: Handle | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, _request: Any, client_address: Any) -> None:
        # a client that hangs up mid-request is normal (timeouts, injected delays)
        logger.debug("connection from %s ended with an error", client_address, exc_info=sys.exc_info())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-emulator"
    sys_version = ""
    # headers and body go out in one write; without this a small answer waits on delayed ACKs
    disable_nagle_algorithm = True
    server: ApiHttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:  # the name BaseHTTPRequestHandler dispatches to
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s - %s", self.address_string(), format % args)

    def _serve(self) -> None:
        handle = self.server.handle_request_fn
        if handle is None:
            self.close_connection = True
            return
        body = self._read_body()
        if body is None:
            return
        path, _, query_string = self.path.partition("?")
        headers = Headers(dict(self.headers.items()))
        response = handle(Request(self.command, path, query_string, headers, body))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %d", self.command, self.path, response.status)
        try:
            self._send(response)
        except _DISCONNECTS:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the body stays unread, so this connection is done
            self._send(Response.json(413, statuses.request_entity_too_large(MAX_BODY).status))
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                self._send(Response.json(413, statuses.request_entity_too_large(MAX_BODY).status))
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _head(self, response: Response, framing: str) -> bytes:
        lines = [
            f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, '')}",
            f"Content-Type: {response.content_type}",
            "Cache-Control: no-cache, private",
            f"Date: {self.date_time_string()}",
            framing,
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _send(self, response: Response) -> None:
        if response.stream is None:
            self.wfile.write(self._head(response, f"Content-Length: {len(response.body)}") + response.body)
            return
        self.wfile.write(self._head(response, "Transfer-Encoding: chunked"))
        self._send_stream(response.stream)

    def _send_stream(self, stream: Iterator[bytes]) -> None:
        try:
            for chunk in stream:
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                elif self._peer_gone():
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _peer_gone(self) -> bool:
        """A watch client that hung up leaves a readable socket that reads empty."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True
