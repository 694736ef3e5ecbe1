"""Tracing of a real `counter serve`, turned on by the standard OTEL_* variables only."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import running_server

pytestmark = pytest.mark.integration


def test_otel_variables_turn_tracing_on_and_its_ids_reach_the_log_lines(tmp_path: Path) -> None:
    env = {
        "COUNTER_BACKEND": "memory",
        "COUNTER_ACCESS_LOG": "true",
        "OTEL_TRACES_EXPORTER": "console",  # spans as JSON on stdout, which goes to the log file
        "OTEL_SERVICE_NAME": "counter-e2e",
    }
    log_path = tmp_path / "server.log"
    with running_server(env, log_path) as server:
        response = httpx.post(f"{server.url}/counters/traced", headers={"X-Request-ID": "trace-rid-1"})
        assert response.status_code == 200
    log = log_path.read_text()
    (access,) = [line for line in log.splitlines() if "trace-rid-1" in line and "counter.access" in line]
    found = re.search(r"trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})", access)
    assert found, access
    trace_id = found.group(1)
    # The console exporter writes each span as JSON when the server stops (spans are batched).
    assert f'"trace_id": "0x{trace_id}"' in log
    assert '"name": "POST /counters/{name}"' in log
    assert '"name": "store increment"' in log
    assert '"service.name": "counter-e2e"' in log
    assert "not installed" not in log
