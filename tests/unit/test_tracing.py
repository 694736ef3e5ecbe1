"""Tracing: spans by route template with a child per store call, their ids on every log line of
the request, and when the OTEL_* variables turn it on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.memory import InMemoryCounterRepository
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.logs import configure_logging, line_writer
from entrypoints.observability import tracing as tracing_module
from entrypoints.observability.tracing import Tracing, tracing_requested, warn_if_tracing_unavailable
from entrypoints.settings import Settings


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced_client(exporter: InMemorySpanExporter, **settings: object) -> AsyncTestClient:  # type: ignore[type-arg]
    config = Settings(**{"backend": "memory", **settings})  # type: ignore[arg-type]
    container = build_container(config)
    container.repository.override(providers.Object(InMemoryCounterRepository()))
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter), {"OTEL_SERVICE_NAME": "counter-test"})
    container.tracing.override(providers.Object(tracing))
    return AsyncTestClient(app=create_app(container=container, settings=config))


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


@pytest.mark.parametrize("fast_path", [True, False], ids=["lean-layer", "handler"])
async def test_an_increment_is_a_server_span_by_route_with_a_store_child(
    exporter: InMemorySpanExporter, fast_path: bool
) -> None:
    async with traced_client(exporter, fast_path=fast_path) as client:
        assert (await client.post("/counters/visits")).status_code == 200
    (server,) = server_spans(exporter)
    assert server.name == "POST /counters/{name}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/counters/{name}"
    assert server.resource.attributes["service.name"] == "counter-test"
    (store,) = [span for span in exporter.get_finished_spans() if span.name == "store increment"]
    assert store.kind is SpanKind.CLIENT
    assert store.context is not None
    assert server.context is not None
    assert store.context.trace_id == server.context.trace_id
    assert store.parent is not None
    assert store.parent.span_id == server.context.span_id
    assert store.attributes is not None
    assert store.attributes["counter.store"] == "memory"


async def test_an_unrouted_request_keeps_the_method_as_its_name(exporter: InMemorySpanExporter) -> None:
    async with traced_client(exporter) as client:
        assert (await client.get("/no/such/path/123")).status_code == 404
    (server,) = server_spans(exporter)
    assert server.name == "GET"  # never the raw path: its cardinality has no bound


async def test_probes_and_scrapes_are_not_traced(exporter: InMemorySpanExporter) -> None:
    async with traced_client(exporter) as client:
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    assert server_spans(exporter) == []


async def test_an_incoming_traceparent_is_continued(exporter: InMemorySpanExporter) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with traced_client(exporter) as client:
        headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        assert (await client.get("/counter", headers=headers)).status_code == 200
    (server,) = server_spans(exporter)
    assert server.context is not None
    assert f"{server.context.trace_id:032x}" == trace_id


@pytest.fixture(params=["text", "json"])
def log_lines(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    stream = io.StringIO()
    configure_logging("debug", request.param, stream=stream)
    yield request.param, stream
    line_writer().close()
    logging.getLogger().handlers.clear()


async def test_every_log_line_of_a_traced_request_carries_its_trace_id(
    exporter: InMemorySpanExporter, log_lines: tuple[str, io.StringIO]
) -> None:
    fmt, stream = log_lines
    async with traced_client(exporter, access_log=True) as client:
        # No JSON content type: the lean layer logs that it hands the request on, then the
        # handler answers; two lines of one request, besides its access line.
        response = await client.post("/counters/visits", content=b"{}", headers={"X-Request-ID": "rid-7"})
        assert response.status_code == 415
        await client.post("/counter", headers={"X-Request-ID": "rid-8"})
    assert line_writer().flush()
    traces = {span.name: f"{span.context.trace_id:032x}" for span in server_spans(exporter) if span.context}
    lines = stream.getvalue().splitlines()
    of_first = [line for line in lines if "rid-7" in line]
    assert len(of_first) >= 2, lines  # the hand-on line and the access line at least
    first_trace = traces["POST /counters/{name}"]
    for line in of_first:
        if fmt == "json":
            assert json.loads(line)["trace_id"] == first_trace, line
        else:
            assert f"trace_id={first_trace}" in line, line
    (access,) = [line for line in lines if "rid-8" in line and "counter.access" in line]
    assert traces["POST /counter"] in access
    assert first_trace not in access


def test_tracing_is_asked_for_by_the_standard_variables_only() -> None:
    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_SERVICE_NAME": "x"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_requested(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}
    assert not tracing_requested(disabled)
    assert not Tracing.from_env({}).enabled


def test_the_service_name_defaults_to_the_service(exporter: InMemorySpanExporter) -> None:
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter), {})
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "counter-web-server"
    on = Tracing.from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert on.enabled
    on.shutdown()


def test_without_the_extra_one_clear_warning_and_no_tracing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tracing_module, "tracing_available", lambda: False)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    with caplog.at_level(logging.DEBUG, logger="counter.tracing"):
        assert warn_if_tracing_unavailable(env)
        assert not Tracing.from_env(env).enabled  # what each worker does: no second warning
        assert not warn_if_tracing_unavailable({})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not installed" in warnings[0].getMessage()
    assert "counter-web-server[tracing]" in str(warnings[0].__dict__.get("fix"))
