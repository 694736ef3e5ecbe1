"""Logging configured once, for the service and for uvicorn.

Every record carries the id of the request it belongs to (a context variable set by the request
middleware), so that all lines of one request can be found together.

Every line of the process, the access log's included (entrypoints/access_log.py), is written by
one `LineWriter`: a thread of its own drains a queue of finished lines and writes them in the
order they were queued, many at a time. So no request waits for a write to stderr (a pipe that a
slow reader keeps full would otherwise stall the event loop), lines from several threads never
interleave, and what is queued is written before the process exits (`logging.shutdown`, which
runs at exit, flushes the handler).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import logging.config
import os
import queue
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# The trace and span ids of the request's server span, when it is traced (observability.tracing).
trace_ids_var: ContextVar[tuple[str, str] | None] = ContextVar("trace_ids", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
    "taskName",
}


_BATCH_LINES = 512  # written in one call at the most
# Lines queued and not yet written, at the most: a reader slower than the service (a full pipe)
# must cost bounded memory; lines past it are dropped and the drop is reported in the log itself.
MAX_PENDING_LINES = 20_000
_FLUSH_TIMEOUT_SECONDS = 5.0


class LineWriter:
    """Writes finished lines from a thread of its own, in the order they were queued.

    `write` only puts the line on a queue (no lock, no system call), so it is cheap on the event
    loop; the thread joins whatever has queued meanwhile into one write. A write that fails (a
    closed stderr) drops those lines: logging must never stop the service. When more than
    `max_pending` lines wait (the reader is slower than the service), new lines are dropped
    rather than held in memory, and once the reader catches up a line says how many were.
    """

    def __init__(self, target: Callable[[str], object], max_pending: int = MAX_PENDING_LINES) -> None:
        self._target = target
        self._max_pending = max_pending
        self._reset()

    def _reset(self) -> None:
        self._queue: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Counted without a lock: `next` on a count is atomic, and only the writer thread moves
        # `_done`; a line more or less in a drop count does not matter, memory does.
        self._puts = itertools.count(1)
        self._queued = 0
        self._done = 0
        self._drops = itertools.count(1)
        self._dropped = 0
        self._reported = 0

    @property
    def dropped(self) -> int:
        """Lines dropped so far because too many were waiting."""
        return self._dropped

    def write(self, line: str) -> None:
        """Queue one line (with its newline), or drop it when too many lines wait already."""
        if self._thread is None:
            self._start()
        if self._queued - self._done >= self._max_pending:
            self._dropped = next(self._drops)
            return
        self._queued = next(self._puts)
        self._queue.put(line)

    def flush(self, timeout: float = _FLUSH_TIMEOUT_SECONDS) -> bool:
        """Wait until every line queued so far is written; False if that took over `timeout`."""
        if self._thread is None:
            return True
        written = threading.Event()
        self._queue.put(written)
        return written.wait(timeout)

    def close(self, timeout: float = _FLUSH_TIMEOUT_SECONDS) -> None:
        """Write what is queued, then stop the thread. Lines written later start a new one."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                # A daemon, so that it never holds the process up; at exit logging.shutdown
                # flushes it before the interpreter stops it.
                self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._thread.start()

    def after_fork(self) -> None:
        # The child has the queue but not the thread: start afresh (lines of the parent that
        # were queued are the parent's to write).
        self._reset()

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        stop = False
        while not stop:
            lines: list[str] = []
            done: list[threading.Event] = []
            item = get()
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, threading.Event):
                    done.append(item)
                else:
                    lines.append(item)
                if len(lines) >= _BATCH_LINES:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if lines:
                # stderr closed or broken for good: drop these lines, go on
                with contextlib.suppress(OSError, ValueError):
                    self._target("".join(lines))
                self._done += len(lines)
                dropped = self._dropped - self._reported
                if dropped:
                    self._reported += dropped
                    # Through logging, so the line has the configured format; it comes back here.
                    logging.getLogger("counter.logs").warning(
                        "log lines dropped: the log's reader is slower than the service",
                        extra={"dropped": dropped},
                    )
            for event in done:
                event.set()


def _write_fd(fd: int) -> Callable[[str], object]:
    def write(text: str) -> None:
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]

    return write


def _write_stream(stream: TextIO) -> Callable[[str], object]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


class _Output:
    """Where this process's lines go, and in which layout: set by configure_logging."""

    def __init__(self) -> None:
        self.writer = LineWriter(_write_fd(2))
        self.layout = "text"


_output = _Output()


def _after_fork_in_child() -> None:
    _output.writer.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def line_writer() -> LineWriter:
    """The writer every log line of this process goes through (stderr unless configured)."""
    return _output.writer


def line_format() -> str:
    """The layout configure_logging chose for every line: "text" or "json"."""
    return _output.layout


class WriterHandler(logging.Handler):
    """A logging handler that formats on the caller's thread and hands the line to the writer."""

    def __init__(self, writer: LineWriter | None = None) -> None:
        super().__init__()
        self.writer = writer or _output.writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 (logging's own convention: report and go on)
            self.handleError(record)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        super().close()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        trace_ids = trace_ids_var.get()
        if trace_ids is not None:  # fields of their own: both layouts show them
            record.trace_id, record.span_id = trace_ids
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, request_id and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def escape(text: str) -> str:
    """`text` with every unprintable character written as an escape (\\r, \\n, \\x1b, ...), so
    that text from outside (a path, a header, an error message) can neither start a forged line
    nor drive a terminal."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


class TextFormatter(logging.Formatter):
    """Readable lines: time level logger [request id] event key=value ... (escaped; only a
    traceback spans lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # Fields the message already shows (the access line's method, path, status) are noise.
        message = record.getMessage()
        fields = {k: v for k, v in _fields(record).items() if str(v) not in message}
        if fields:
            line += " " + " ".join(f"{k}={escape(str(v))}" for k, v in fields.items())
        return line


def configure_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the process's logging; `stream` instead of stderr is for tests."""
    previous = _output.writer
    _output.writer = LineWriter(_write_fd(2) if stream is None else _write_stream(stream))
    previous.close()
    formatter = _output.layout = "json" if fmt == "json" else "text"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"request_id": {"()": RequestIdFilter}},
            "formatters": {
                "json": {"()": JsonFormatter},
                "text": {"()": TextFormatter},
            },
            "handlers": {
                "stderr": {
                    "()": WriterHandler,
                    "formatter": formatter,
                    "filters": ["request_id"],
                }
            },
            "root": {"handlers": ["stderr"], "level": level.upper()},
            "loggers": {
                # uvicorn's own handlers would print every line twice; ours handle them.
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                # Our middleware writes the access line, with the request id and duration.
                "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            },
        }
    )
