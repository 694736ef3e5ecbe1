"""Access lines of probes and scrapes at debug level; the span's ids on a traced request's line,
in the layout the formatters give the same record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from adapters.memory import InMemoryCounterRepository
from entrypoints.access_log import AccessLog, is_quiet
from entrypoints.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
    line_writer,
    request_id_var,
    trace_ids_var,
)
from tests.unit.conftest import make_client

NOW = 1_764_600_000.25
IDS = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def record_of(level: int, method: str, path: str, status: int, duration_ms: float) -> logging.LogRecord:
    record = logging.LogRecord("counter.access", level, __file__, 1, "%s %s %s", (method, path, status), None)
    for key, value in {"method": method, "path": path, "status": status, "duration_ms": duration_ms}.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    record.created, record.msecs = NOW, 250.0
    return record


def lines_of(fmt: str, *, debug: bool, path: str) -> list[str]:
    lines: list[str] = []
    AccessLog(lines.append, fmt, clock=lambda: NOW, debug=debug)("GET", path, 200, 0.5, "rid-1")
    return lines


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_probes_and_scrapes_are_written_only_at_debug_level(fmt: str, path: str) -> None:
    assert lines_of(fmt, debug=False, path=path) == []
    (line,) = lines_of(fmt, debug=True, path=path)
    token = request_id_var.set("rid-1")
    try:
        record = record_of(logging.DEBUG, "GET", path, 200, 0.5)
    finally:
        request_id_var.reset(token)
    if fmt == "json":
        assert json.loads(line) == json.loads(JsonFormatter().format(record))
        assert json.loads(line)["level"] == "debug"
    else:
        assert line[:-1] == TextFormatter().format(record)
        assert " DEBUG   counter.access " in line


@pytest.mark.parametrize("path", ["/counter", "/counters/health", "/metrics/x", "/healthz"])
def test_every_other_path_is_at_info_level(path: str) -> None:
    assert not is_quiet(path)
    (line,) = lines_of("text", debug=False, path=path)
    assert " INFO    counter.access " in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_traced_requests_line_carries_its_span_ids_as_the_formatters_would(fmt: str) -> None:
    request_token, trace_token = request_id_var.set("rid-1"), trace_ids_var.set(IDS)
    try:
        lines: list[str] = []
        AccessLog(lines.append, fmt, clock=lambda: NOW)("POST", "/counter", 200, 0.5, "rid-1")
        record = record_of(logging.INFO, "POST", "/counter", 200, 0.5)
    finally:
        request_id_var.reset(request_token)
        trace_ids_var.reset(trace_token)
    (line,) = lines
    if fmt == "json":
        got = json.loads(line)
        expected = json.loads(JsonFormatter().format(record))
        assert list(got) == list(expected)
        assert got == expected
        assert (got["trace_id"], got["span_id"]) == IDS
    else:
        assert line[:-1] == TextFormatter().format(record)
        assert line.endswith(f" trace_id={IDS[0]} span_id={IDS[1]}\n")


@pytest.fixture(params=["info", "debug"])
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    stream = io.StringIO()
    configure_logging(request.param, "json", stream=stream)
    yield request.param, stream
    line_writer().close()
    logging.getLogger().handlers.clear()


async def test_the_app_logs_probes_only_when_debug_is_on(captured: tuple[str, io.StringIO]) -> None:
    level, stream = captured
    async with make_client(InMemoryCounterRepository()) as client:
        await client.get("/health/live")
        await client.get("/metrics")
        await client.post("/counter")
    assert line_writer().flush()
    access = [json.loads(line) for line in stream.getvalue().splitlines() if "counter.access" in line]
    paths = {line["path"]: line["level"] for line in access}
    if level == "info":
        assert paths == {"/counter": "info"}
    else:
        assert paths == {"/health/live": "debug", "/metrics": "debug", "/counter": "info"}
