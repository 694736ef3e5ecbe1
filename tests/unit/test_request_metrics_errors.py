"""The metrics middleware around an error raised inside it, once the answer has started: the
error goes on to the framework (which reports it) and the request is counted with the status
the client got. An error raised before the answer is covered through the app (a rate limit's
429, tests/unit/test_rate_limit.py)."""

from __future__ import annotations

from typing import Any

import pytest

from entrypoints.observability.http_metrics import RequestMetrics
from entrypoints.observability.metrics import Metrics


class BrokenError(Exception):
    pass


async def _starts_then_fails(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise BrokenError


async def test_an_error_after_the_answer_started_goes_on_and_is_counted_with_its_status() -> None:
    metrics = Metrics(store="memory", version="test")
    middleware = RequestMetrics(_starts_then_fails, metrics)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/counter", "path_template": "/counter"}
    with pytest.raises(BrokenError):
        await middleware(scope, receive, send)
    metrics.flush()
    assert [message["status"] for message in sent] == [200]
    labels = {"route": "/counter", "method": "POST", "status": "200"}
    assert metrics.registry.get_sample_value("counter_requests_total", labels) == 1
