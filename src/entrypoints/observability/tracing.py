"""OpenTelemetry tracing, off unless the standard OTEL_* variables ask for it.

Tracing is on when OTEL_TRACES_EXPORTER names an exporter (otlp, console), or when an OTLP
endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and
OTEL_SDK_DISABLED is not true. Everything else is the SDK's own reading of its variables
(sampler, batch sizes, headers, resource attributes); service.name is OTEL_SERVICE_NAME, else
counter-web-server. It needs the `tracing` extra (`pip install 'counter-web-server[tracing]'`);
without it, `counter serve` warns once and serves untraced.

What is traced: one server span per request (Litestar's OpenTelemetry plugin, around the router),
named by the route template once the router has found it (`POST /counters/{name}`; a request no
route serves keeps the method alone), and a child span per store call (repository.py). The ids
of the request's span go on every log line of the request, the access line included.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from entrypoints.http.middleware import ASGIApp
from entrypoints.logs import trace_ids_var

if TYPE_CHECKING:
    from litestar.plugins import InitPluginProtocol
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger("counter.tracing")

SERVICE_NAME = "counter-web-server"
EXTRA_HINT = "pip install 'counter-web-server[tracing]'"
# Probes and scrapes, every few seconds: traces of them would drown the others.
UNTRACED_PATHS = ["^/metrics$", "^/health/"]
_FLUSH_AT_EXIT_MILLIS = 2000


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracing_available() -> bool:
    try:
        import opentelemetry.instrumentation.asgi
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def warn_if_tracing_unavailable(environ: Mapping[str, str] | None = None) -> bool:
    """Warn (once: call it where the server starts) when the OTEL_* variables ask for tracing
    and the extra is not installed. True when it warned."""
    if tracing_requested(environ) and not tracing_available():
        logger.warning(
            "tracing is asked for by the OTEL_* variables but OpenTelemetry is not installed;"
            " serving without traces",
            extra={"fix": EXTRA_HINT},
        )
        return True
    return False


class Tracing:
    """The tracer provider of one app, or nothing (`Tracing.off()`)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer: Tracer | None = None if provider is None else provider.get_tracer("counter-web-server")

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """As the OTEL_* variables say; off when they do not ask for it or the extra is missing
        (`counter serve` has warned about that already)."""
        env = os.environ if environ is None else environ
        if not tracing_requested(env):
            return cls.off()
        if not tracing_available():
            logger.debug("tracing asked for but not installed", extra={"fix": EXTRA_HINT})
            return cls.off()
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = _exporter(env)
        if exporter is None:
            return cls.off()
        return cls.with_processor(BatchSpanProcessor(exporter), env)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, environ: Mapping[str, str] | None = None) -> Tracing:
        """Spans to `processor` (tests give a SimpleSpanProcessor of an in-memory exporter)."""
        from importlib.metadata import version

        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        env = os.environ if environ is None else environ
        # Resource.create reads OTEL_RESOURCE_ATTRIBUTES; the name given here would win over
        # OTEL_SERVICE_NAME, so that variable is read here.
        resource = Resource.create(
            {
                "service.name": env.get("OTEL_SERVICE_NAME", "").strip() or SERVICE_NAME,
                "service.version": version("counter-web-server"),
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor)
        return cls(provider)

    def plugin(self) -> InitPluginProtocol:
        """Litestar's OpenTelemetry plugin, with this provider (never the process's global one)."""
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        config = OpenTelemetryConfig(
            tracer_provider=self.provider,
            scope_span_details_extractor=_span_details,
            server_request_hook_handler=_note_span_ids,
            exclude_spans=["receive", "send"],
            exclude=UNTRACED_PATHS,
        )
        return OpenTelemetryPlugin(config)

    def shutdown(self) -> None:
        """Export what is still queued (for a bounded time: a collector that is down must not
        hold up a rollout), then stop."""
        if self.provider is not None:
            self.provider.force_flush(timeout_millis=_FLUSH_AT_EXIT_MILLIS)
            self.provider.shutdown()


def _exporter(env: Mapping[str, str]) -> SpanExporter | None:
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        ).strip()
        if protocol not in {"", "http/protobuf"}:
            logger.warning(
                "only the http/protobuf OTLP protocol is supported; traces go out with it",
                extra={"protocol": protocol},
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # its endpoint, headers and timeout from the OTEL_* variables
    logger.warning("unknown OTEL_TRACES_EXPORTER; serving without traces", extra={"exporter": name})
    return None


def _span_details(scope: Any) -> tuple[str, dict[str, Any]]:
    """The span's name before routing: the method alone (the path would be of unbounded
    cardinality); SpanByRoute names it by the route template once known."""
    return str(scope.get("method", "HTTP")), {}


def _note_span_ids(span: Span, _scope: Any) -> None:
    context = span.get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        trace_ids_var.set((f"{context.trace_id:032x}", f"{context.span_id:016x}"))


class SpanByRoute:
    """App-level middleware (tracing on only): names the request's server span by its route
    template, which only the router knows, and sets `http.route`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        from opentelemetry import trace

        self._current_span = trace.get_current_span

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            span = self._current_span()
            if span.is_recording():
                template = scope["path_template"]
                span.update_name(f"{scope['method']} {template}")
                span.set_attribute("http.route", template)
        await self.app(scope, receive, send)
