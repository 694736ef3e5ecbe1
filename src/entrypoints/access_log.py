"""The access log: one line per request, in the same layout as every other log line.

Why not a `logging` call: a record through the logging machinery (a LogRecord with its caller,
thread and process lookups, the handler's lock, the formatter) cost about 10 us per line here,
a quarter of a whole increment. The line is the same every time but for five values, so it is
formatted here directly (the time prefix is computed once a second) and handed to the process's
LineWriter, which writes it off the event loop in order with every other log line
(entrypoints/logs.py). The layout is the one TextFormatter and JsonFormatter give an access
record, so a reader of the logs sees no difference.

Everything in a line that a client chose (the path, the method) is escaped: a percent-encoded CR,
LF or ESC in a path can neither start a forged line nor drive a terminal.

Probes and scrapes (`/health/*`, `/metrics`) come every few seconds from machines, not users:
their lines are at debug level, written only when COUNTER_LOG_LEVEL=debug. When the request is
traced, its line carries the trace and span ids of its span, as every other line of it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from entrypoints.logs import escape, line_format, line_writer, trace_ids_var

LOGGER = "counter.access"


def is_quiet(path: str) -> bool:
    """Whether the access line of `path` is at debug level (a probe or a scrape)."""
    return path == "/metrics" or path.startswith("/health/")


class _JsonLine(msgspec.Struct, omit_defaults=True):
    """The fields JsonFormatter writes for an access record, in its order."""

    time: str
    level: str
    logger: str
    event: str
    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float
    trace_id: str | None = None
    span_id: str | None = None


_encode = msgspec.json.Encoder().encode


class AccessLog:
    """Writes the access line of one request: `access_log(method, path, status, ms, request_id)`."""

    __slots__ = ("_clock", "_debug", "_json", "_prefix", "_second", "_write")

    def __init__(
        self,
        write: Callable[[str], object],
        fmt: str = "text",
        clock: Callable[[], float] = time.time,
        *,
        debug: bool = False,
    ) -> None:
        self._write = write
        self._clock = clock
        self._json = fmt == "json"
        self._debug = debug  # whether debug lines (probes, scrapes) are written
        self._second = -1
        self._prefix = ""

    @staticmethod
    def configured() -> AccessLog | None:
        """The access log as logging is configured now (entrypoints.logs): None when access
        lines would not be written (the level is above info), else one in the configured layout
        that writes through the process's writer."""
        if not logging.getLogger(LOGGER).isEnabledFor(logging.INFO):
            return None
        debug = logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG)
        return AccessLog(line_writer().write, line_format(), debug=debug)

    def __call__(self, method: str, path: str, status: int, duration_ms: float, request_id: str) -> None:
        quiet = path == "/metrics" or path.startswith("/health/")  # is_quiet, without its call
        if quiet and not self._debug:
            return
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            if self._json:  # JsonFormatter: ISO 8601 in UTC
                self._prefix = datetime.fromtimestamp(second, UTC).isoformat()[:-6]
            else:  # logging's default asctime: local time
                self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        millis = int((now - second) * 1000)
        trace_ids = trace_ids_var.get()
        if self._json:
            line = _JsonLine(
                time=f"{self._prefix}.{millis:03d}+00:00",
                level="debug" if quiet else "info",
                logger=LOGGER,
                event=f"{method} {path} {status}",
                request_id=request_id,
                method=method,
                path=path,
                status=status,
                duration_ms=duration_ms,
            )
            if trace_ids is not None:
                line.trace_id, line.span_id = trace_ids
            self._write(_encode(line).decode() + "\n")
            return
        level = "DEBUG  " if quiet else "INFO   "  # logging's %(levelname)-7s
        traced = "" if trace_ids is None else f" trace_id={trace_ids[0]} span_id={trace_ids[1]}"
        self._write(
            f"{self._prefix},{millis:03d} {level} {LOGGER} [{request_id}] {escape(method)} {escape(path)}"
            f" {status} duration_ms={duration_ms}{traced}\n"
        )
