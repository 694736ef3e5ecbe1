from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.memory import InMemoryCounterRepository
from entrypoints.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
    line_writer,
    request_id_var,
)
from tests.unit.conftest import make_client


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every line the process logs, as configured for a JSON deployment, in one stream."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    line_writer().close()
    logging.getLogger().handlers.clear()


def test_json_lines_carry_event_level_and_extra_fields() -> None:
    token = request_id_var.set("rid-1")
    try:
        record = logging.LogRecord("counter.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
        record.backend = "sqlite"
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["event"] == "hello you"
    assert line["level"] == "info"
    assert line["request_id"] == "rid-1"
    assert line["backend"] == "sqlite"


def test_text_lines_are_readable() -> None:
    record = logging.LogRecord("counter.x", logging.WARNING, __file__, 1, "careful", (), None)
    record.status = 503
    RequestIdFilter().filter(record)
    text = TextFormatter().format(record)
    assert "WARNING" in text
    assert "careful" in text
    assert "status=503" in text
    assert "[-]" in text


async def test_every_line_of_a_request_has_its_id_and_one_access_line(captured: io.StringIO) -> None:
    store = InMemoryCounterRepository()
    client: AsyncTestClient  # type: ignore[type-arg]
    async with make_client(store) as client:
        await client.post("/counter", headers={"X-Request-ID": "req-42"})
        await client.get("/nowhere-at-all-xyz", headers={"X-Request-ID": "req-43"})
    assert line_writer().flush()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "counter.access"]
    post = [line for line in access if line["request_id"] == "req-42"]
    assert len(post) == 1
    assert post[0]["method"] == "POST"
    assert post[0]["path"] == "/counter"
    assert post[0]["status"] == 200
    assert post[0]["duration_ms"] >= 0
    not_found = [line for line in access if line["request_id"] == "req-43"]
    assert [line["status"] for line in not_found] == [404]
