"""The access log: the same lines as a logging record would give, escaped, written in order off
the caller's thread, and none lost at exit."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading

import pytest

from entrypoints.access_log import AccessLog
from entrypoints.logs import JsonFormatter, LineWriter, RequestIdFilter, TextFormatter, escape, request_id_var


def as_record(method: str, path: str, status: int, duration_ms: float, request_id: str) -> logging.LogRecord:
    """The record the access line stands for, as a `logging` call would have made it."""
    record = logging.LogRecord(
        "counter.access", logging.INFO, __file__, 1, "%s %s %s", (method, path, status), None
    )
    for key, value in {"method": method, "path": path, "status": status, "duration_ms": duration_ms}.items():
        setattr(record, key, value)
    token = request_id_var.set(request_id)
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    return record


NOW = 1_764_600_000.0417  # a fixed moment, 41 ms past a second


def one_line(fmt: str, *values: object) -> str:
    lines: list[str] = []
    AccessLog(lines.append, fmt, clock=lambda: NOW)(*values)  # type: ignore[arg-type]
    assert len(lines) == 1
    assert lines[0].endswith("\n")
    assert lines[0].count("\n") == 1
    return lines[0][:-1]


def test_a_text_line_is_what_the_text_formatter_writes_for_the_record() -> None:
    values = ("POST", "/counters/visits", 200, 0.731, "rid-1")
    record = as_record(*values)
    record.created, record.msecs = NOW, 41.0
    assert one_line("text", *values) == TextFormatter().format(record)


def test_a_json_line_has_the_json_formatters_fields_and_values() -> None:
    values = ("GET", "/counter", 404, 12.5, "rid-2")
    record = as_record(*values)
    record.created = NOW
    got = json.loads(one_line("json", *values))
    expected = json.loads(JsonFormatter().format(record))
    assert list(got) == list(expected)
    assert got == expected


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_what_a_client_chose_cannot_forge_a_line_or_reach_a_terminal(fmt: str) -> None:
    forged = "/x\r\n2026-12-01 00:00:00,000 INFO    counter.access [-] DELETE /counters/all 200\x1b[2J"
    line = one_line(fmt, "POST", forged, 400, 1.0, "rid-3")
    assert "\r" not in line
    assert "\x1b" not in line
    if fmt == "json":
        assert json.loads(line)["path"] == forged  # escaped, and read back exactly
    else:
        assert "\\r\\n2026" in line
        assert "\\x1b[2J" in line


def test_escape_keeps_printable_text_as_it_is() -> None:
    assert escape("/counters/caf\u00e9 a-b_c.d") == "/counters/caf\u00e9 a-b_c.d"
    assert escape("a\tb\x7f") == "a\\tb\\x7f"


def test_the_writer_keeps_the_order_of_every_thread_and_flush_waits_for_it() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream.write)

    def lines_of(name: str) -> None:
        for i in range(2000):
            writer.write(f"{name} {i}\n")

    threads = [threading.Thread(target=lines_of, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    lines_of("main")
    for thread in threads:
        thread.join()
    assert writer.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8000
    for name in ("a", "b", "c", "main"):
        assert [int(line.split()[1]) for line in lines if line.split()[0] == name] == list(range(2000))
    writer.close()


def test_a_failing_target_loses_those_lines_but_stops_nothing() -> None:
    calls: list[str] = []

    def broken(text: str) -> None:
        calls.append(text)
        raise BrokenPipeError

    writer = LineWriter(broken)
    writer.write("lost\n")
    assert writer.flush()
    writer.write("also lost\n")
    assert writer.flush()
    assert "".join(calls) == "lost\nalso lost\n"
    writer.close()


def test_no_line_is_lost_when_the_process_exits() -> None:
    script = textwrap.dedent(
        """
        from entrypoints.access_log import AccessLog
        from entrypoints.logs import configure_logging
        import logging
        configure_logging("info", "text")
        log = AccessLog.configured()
        for i in range(20000):
            log("POST", f"/counters/c{i}", 200, 0.1, "rid")
        logging.getLogger("counter.last").warning("the last line")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 20001
    assert [line.rsplit(" ", 3)[1] for line in lines[:-1]] == [f"/counters/c{i}" for i in range(20000)]
    assert lines[-1].endswith("the last line")


def test_access_lines_follow_the_level() -> None:
    logger = logging.getLogger("counter.access")
    previous = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert AccessLog.configured() is None
        logger.setLevel(logging.INFO)
        assert AccessLog.configured() is not None
    finally:
        logger.setLevel(previous)


def test_other_text_lines_are_escaped_too_but_tracebacks_keep_their_lines() -> None:
    try:
        raise ValueError("boom")  # noqa: TRY301
    except ValueError:
        record = logging.LogRecord(
            "counter.x", logging.ERROR, __file__, 1, "bad name %r\x1b", ("a\nb",), sys.exc_info()
        )
    record.detail = "x\ry"
    RequestIdFilter().filter(record)
    text = TextFormatter().format(record)
    first, *traceback = text.splitlines()
    assert "\x1b" not in text
    assert "\\x1b" in first
    assert "detail=x\\ry" in text
    assert "Traceback (most recent call last):" in traceback[0]


def test_a_reader_slower_than_the_service_costs_bounded_memory_and_the_drop_is_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = threading.Event()
    written: list[str] = []

    def slow(text: str) -> None:
        released.wait(10)
        written.append(text)

    writer = LineWriter(slow, max_pending=100)
    for i in range(350):
        writer.write(f"line {i}\n")
    assert writer.dropped == 250  # the writer is stuck: 100 lines wait, the rest are not kept
    released.set()
    with caplog.at_level(logging.WARNING, logger="counter.logs"):
        assert writer.flush()
        for i in range(5):  # once it has caught up, lines are kept again
            writer.write(f"after {i}\n")
        assert writer.flush()
    lines = "".join(written).splitlines()
    assert lines[:100] == [f"line {i}" for i in range(100)]
    assert [line for line in lines if line.startswith("after")] == [f"after {i}" for i in range(5)]
    notices = [record for record in caplog.records if record.name == "counter.logs"]
    assert [record.__dict__["dropped"] for record in notices] == [250]
    writer.close()
