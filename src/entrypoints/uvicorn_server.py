"""uvicorn as `counter serve` runs it: connections that cost bounded memory and time, and an exit
code that says whether the server started.

httptools (uvicorn's fast parser) has no limit on the size of a request head, and uvicorn closes
no connection that has not finished a request: an idle one, a head sent a byte at a time, a body
that never ends, a client that stops reading its answer. `BoundedHttpToolsProtocol` bounds each.
`run` replaces `uvicorn.run`, which returns normally (exit code 0) when the workers of a
multi-process server fail to start.

This module is the one place that leans on uvicorn's internals rather than its documented API,
and tests/unit/test_cli_limits.py fingerprints every piece of them it relies on, so that an
uvicorn upgrade that changes one fails a test instead of silently lifting a limit:
- `HttpToolsProtocol`: `data_received` (rewritten here, so that a head over the limit stops the
  parser), the parser callbacks, the keep-alive timer (uvicorn arms it after a response only),
  `shutdown`, `pause_writing`/`resume_writing`, and the attributes of `RequestResponseCycle`
  read here (`response_started`, `response_complete`, `keep_alive`, `disconnected`,
  `message_event`) and of the protocol (`url`, `headers`, `pipeline`, `server_state`);
- `Server.shutdown`, which cancels the requests still running after `timeout_graceful_shutdown`,
  and `RequestResponseCycle.run_asgi`, which logs each cancelled one with a traceback;
- `Multiprocess`, whose workers' exit codes (`STARTUP_FAILURE`, 3) say that they could not start,
  and `Server.capture_signals`, which raises the signal it stopped on again once it is done;
- `Multiprocess.processes`, `keep_subprocess_alive` and `handle_signals`, the steps in which the
  supervisor replaces or retires workers (`Supervisor` tells who exited, for the metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Any

import httptools
from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState
from uvicorn.supervisors.multiprocess import Multiprocess

from entrypoints.stopping import announce_stopping

logger = logging.getLogger("counter.server")

# Once the server is told to stop, a request whose body is still arriving gets this much longer
# to finish sending it (or what is left of its body timeout, if less): an honest client sends a
# few kilobytes in milliseconds, and a slow one must not hold every shutdown, and every rollout,
# for a whole body timeout.
READ_GRACE_AT_SHUTDOWN_SECONDS = 1.0

# Where the parser is in the current request. Between requests, or once one is wholly received.
_IDLE = 0
_HEAD = 1  # the request line and headers have begun and are not complete
_BODY = 2  # the head is complete, the body is not

# What a request head costs on the wire beyond its URL and header fields: the method, the
# version, the line ends, and ": " plus a line end per header.
_REQUEST_LINE_OVERHEAD = 16
_HEADER_OVERHEAD = 4
# The bytes of a head are counted from the read it begins in; a head that begins in the middle of
# a read (after the previous request, pipelined) is counted from its next read. Above any limit.
_UNCOUNTED = 1 << 62


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may cost (the COUNTER_* settings of the same names)."""

    max_header_bytes: int
    keep_alive_seconds: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    send_timeout_seconds: float


class CounterConfig(Config):
    """uvicorn's Config with the connection limits; they travel with it to worker processes."""

    def __init__(self, app: str | Callable[..., Any], *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, timeout_keep_alive=limits.keep_alive_seconds, **options)
        self.limits = limits

    def load(self) -> None:
        super().load()  # in the process that serves, after the app factory configured logging
        _quiet_cancellations()


class _HeadTooLarge(Exception):  # noqa: N818 - a signal to stop the parser, not an error
    """Raised in a parser callback to stop the parser: the head just completed is too large."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head, bounded read times and send stalls.

    - Idle: a connection is closed after `keep_alive_seconds` without a request, before its first
      request too (uvicorn arms that timer only after a response).
    - Head: one larger than `max_header_bytes` is answered 431 and the connection closed, as soon
      as that many bytes of it have arrived, counted read by read (httptools buffers an
      unfinished header whole); a complete one is measured exactly.
    - Head and body: each must arrive within its timeout from the read it began in, else 408 and
      the connection is closed. More bytes do not reset the clock, so a trickle does not help.
    - Send: a client that stops reading its answer for `send_timeout_seconds` is dropped.
    A request whose head and body arrive in one read (nearly all of them) arms no timer at all.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, CounterConfig):
            raise TypeError("BoundedHttpToolsProtocol needs a CounterConfig, which holds its limits")
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits
        self._state = _IDLE
        self._head_bytes = 0  # bytes of the current head received so far (whole reads), or _UNCOUNTED
        self._head_refused = False
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_deadline = 0.0
        self._send_timer: asyncio.TimerHandle | None = None

    # --------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        self._cancel_send_timer()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, except that bytes that merely arrive no longer count as activity (the idle
        # timer stops when a request begins), and that the head is measured and timed.
        if self._state is not _BODY:
            counted = self._head_bytes
            self._head_bytes = len(data) if counted >= _UNCOUNTED else counted + len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._head_refused:
                self._refuse_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._cancel_read_timer()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._state is not _IDLE:  # rare: nearly every request comes whole in one read
            self._bound_unfinished_request()

    def _bound_unfinished_request(self) -> None:
        if self._state is _HEAD:
            if _UNCOUNTED > self._head_bytes > self.limits.max_header_bytes:
                self._refuse_head()
            elif self._read_timer is None:
                self._arm_read_timer(self.limits.header_timeout_seconds)
        elif self._read_timer is None:
            self._arm_read_timer(self.limits.body_timeout_seconds)

    # --------------------------------------------------------------- parser callbacks
    # Called for every request: the parent's methods are called directly, not through super().

    def on_message_begin(self) -> None:
        self._state = _HEAD
        if self.timeout_keep_alive_task is not None:  # a request is under way: it has its own bounds
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        _on_message_begin(self)

    def on_headers_complete(self) -> None:
        if (
            self._head_bytes > self.limits.max_header_bytes
            and self._head_size() > self.limits.max_header_bytes
        ):
            self._head_refused = True
            raise _HeadTooLarge
        self._state = _BODY
        if self._read_timer is not None:
            self._cancel_read_timer()
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._state = _IDLE
        # The next head may begin in the middle of this read, whose bytes were counted for this
        # request: measure it from its own next read, and from its fields if it ends in this one.
        self._head_bytes = _UNCOUNTED
        if self._read_timer is not None:
            self._cancel_read_timer()
        _on_message_complete(self)

    def _head_size(self) -> int:
        """The size of the head just parsed, as it was on the wire (near enough)."""
        size = len(self.url) + _REQUEST_LINE_OVERHEAD
        for name, value in self.headers:
            size += len(name) + len(value) + _HEADER_OVERHEAD
        return size

    # --------------------------------------------------------------- timers

    def timeout_keep_alive_handler(self) -> None:
        if self._state is _IDLE:  # a request that has begun is bounded by its own timers
            super().timeout_keep_alive_handler()

    def shutdown(self) -> None:
        announce_stopping()  # before uvicorn waits for the answers in flight: streams end now
        grace_ends = self.loop.time() + READ_GRACE_AT_SHUTDOWN_SECONDS
        if self._state is _BODY and self._read_timer is not None and grace_ends < self._read_deadline:
            self._cancel_read_timer()
            self._arm_read_timer(READ_GRACE_AT_SHUTDOWN_SECONDS)
        super().shutdown()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_seconds, self._send_timed_out)

    def resume_writing(self) -> None:
        self._cancel_send_timer()
        super().resume_writing()

    def _arm_read_timer(self, seconds: float) -> None:
        self._read_deadline = self.loop.time() + seconds
        self._read_timer = self.loop.call_at(self._read_deadline, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.pipeline:
            # Queued behind a request still being answered, with reading paused by uvicorn: its
            # time has not begun.
            self._arm_read_timer(self.limits.body_timeout_seconds)
            return
        part = "head" if self._state is _HEAD else "body"
        logger.info("request not received in time", extra={"part": part, "client": self._client_text()})
        cycle: RequestResponseCycle | None = self.cycle
        if self._state is _HEAD:
            if cycle is None or cycle.response_complete:
                self._answer_and_close(
                    HTTPStatus.REQUEST_TIMEOUT, "the request head was not received in time"
                )
            else:
                cycle.keep_alive = False  # the previous request is being answered: then close
        elif cycle is None or cycle.response_complete:
            self.transport.close()  # answered without its body (a 413...), and it is still coming
        elif not cycle.response_started:
            self._answer_and_close(HTTPStatus.REQUEST_TIMEOUT, "the request body was not received in time")
            # What uvicorn does when the client leaves: the app's receive() answers
            # http.disconnect, and whatever it sends now is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        else:
            cycle.keep_alive = False  # its answer is under way: finish it, then close

    def _send_timed_out(self) -> None:
        self._send_timer = None
        logger.info("client stopped reading its response", extra={"client": self._client_text()})
        self.transport.abort()  # close() would wait for the unread buffer to drain

    # --------------------------------------------------------------- answers of our own

    def _refuse_head(self) -> None:
        logger.info(
            "request head too large",
            extra={"client": self._client_text(), "max_header_bytes": self.limits.max_header_bytes},
        )
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is None or cycle.response_complete:
            self._answer_and_close(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the request line and headers must fit in {self.limits.max_header_bytes} bytes",
            )
        else:
            # A pipelined head, behind a request whose answer is under way: finish that answer,
            # then close, and read nothing more.
            self.flow.pause_reading()
            cycle.keep_alive = False

    def _answer_and_close(self, status: HTTPStatus, detail: str) -> None:
        body = json.dumps({"title": status.phrase, "status": status.value, "detail": detail}).encode()
        content = [STATUS_LINE[status.value]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/problem+json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    def _client_text(self) -> str:
        return "%s:%d" % self.client if self.client else "-"  # noqa: UP031 - a (host, port) tuple


_on_message_begin = HttpToolsProtocol.on_message_begin
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


class _QuietCancellations(logging.Filter):
    """Drops uvicorn's traceback for each request it cancels at the graceful shutdown timeout:
    its own line ("Cancel N running task(s), timeout graceful shutdown exceeded") says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


def _quiet_cancellations() -> None:
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietCancellations) for existing in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_QuietCancellations())


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, which also calls `on_worker_exit(pid)` for each
    worker it replaces (it died) or retires (fewer workers, a restart)."""

    def __init__(self, config: Config, sockets: list[Any], on_worker_exit: Callable[[int], None]) -> None:
        super().__init__(config, sockets)
        self._on_worker_exit = on_worker_exit

    def keep_subprocess_alive(self) -> None:
        self._noting_exits(super().keep_subprocess_alive)

    def handle_signals(self) -> None:
        self._noting_exits(super().handle_signals)

    def _noting_exits(self, step: Callable[[], None]) -> None:
        before = {process.pid for process in self.processes}
        step()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                self._on_worker_exit(pid)


def _nothing(_pid: int) -> None:
    """No bookkeeping for a worker that exited."""


def run(
    app: str,
    *,
    limits: ConnectionLimits,
    host: str,
    port: int,
    workers: int,
    shutdown_timeout_seconds: int,
    on_worker_exit: Callable[[int], None] = _nothing,
) -> int:
    """Serve `app` (an import path of an app factory) until told to stop; the exit code is 0, or
    `STARTUP_FAILURE` (3) when the server, or any of its workers, could not start.
    `on_worker_exit(pid)` is told of each worker that a server of several replaced or retired."""
    config = CounterConfig(
        app,
        limits=limits,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=shutdown_timeout_seconds,
    )
    try:
        return _serve(config, on_worker_exit)
    except SystemExit as stop:  # uvicorn's way to report a failed bind or lifespan start-up
        return stop.code if isinstance(stop.code, int) else STARTUP_FAILURE


def _serve(config: CounterConfig, on_worker_exit: Callable[[int], None]) -> int:
    if config.workers > 1:
        supervisor = Supervisor(config, [config.bind_socket()], on_worker_exit)
        supervisor.run()
        # The supervisor stops when a worker exits with STARTUP_FAILURE, and keeps that worker.
        failed = any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
        return STARTUP_FAILURE if failed else 0
    server = Server(config)
    # uvicorn ends by raising again the signal it stopped on, under the handler it found: for
    # SIGTERM the default one, which kills the process before its last log lines (queued for the
    # writer thread) are written. With a handler that does nothing, the process exits normally,
    # its lines written, with 0 as with several workers.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else STARTUP_FAILURE


def _stopped(_signal: int, _frame: FrameType | None) -> None:
    """SIGTERM, raised again by uvicorn once it has shut down: nothing left to do."""
