"""The one way to build the app: `create_app(container=None)`.

Nothing connects here. The lifespan opens the selected store when the server starts and closes
it when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import litestar_offline_docs
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from domain.errors import DomainError
from entrypoints.access_log import AccessLog
from entrypoints.container import Container, build_container, start_changes, start_service
from entrypoints.http.abacus import abacus_router
from entrypoints.http.auth import ADMIN_TOKEN_STATE_KEY
from entrypoints.http.badges.routes import BADGE_CONTROLLERS
from entrypoints.http.bodies import StrictJSONRequest
from entrypoints.http.controllers import (
    CounterController,
    HealthController,
    docs_redirect,
)
from entrypoints.http.cors import cors_config
from entrypoints.http.countapi import countapi_router
from entrypoints.http.counter_routes import ONE_COUNTER_CONTROLLERS
from entrypoints.http.dependencies import (
    BACKEND_STATE_KEY,
    FAST_PATH_STATE_KEY,
    SERVICE_STATE_KEY,
    provide_backend_name,
    provide_counter_service,
)
from entrypoints.http.errors import EXCEPTION_HANDLERS, release_dependency_group
from entrypoints.http.events import EVENT_CONTROLLERS, EventStreams, StreamLimits
from entrypoints.http.events.streams import EVENTS_STATE_KEY, provide_event_streams
from entrypoints.http.head import HeadRouter, serving_head
from entrypoints.http.middleware import RequestContext
from entrypoints.http.namespaced import NamespaceCounterController
from entrypoints.http.openapi import StrictStructSchemaPlugin
from entrypoints.http.page.routes import PageController
from entrypoints.http.rate_limit import rate_limits
from entrypoints.logs import configure_logging, line_writer
from entrypoints.observability.endpoint import METRICS_STATE_KEY, metrics_endpoint
from entrypoints.observability.http_metrics import RequestMetrics
from entrypoints.observability.metrics import FLUSH_INTERVAL_SECONDS, Metrics
from entrypoints.observability.tracing import SpanByRoute, Tracing
from entrypoints.runtime import tune_garbage_collector
from entrypoints.settings import Settings
from entrypoints.stopping import when_stopping

logger = logging.getLogger("counter.app")

DOCS_ASSETS_PATH = "/schema/assets"
_DOCS_ASSETS_DIR = Path(litestar_offline_docs.__file__).parent / "static"


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Counter Web Server",
        version=version("counter-web-server"),
        description=(
            "Exact HTTP counters: `POST` increments atomically, `GET` reads. Safe retries with"
            " `Idempotency-Key`; errors are RFC 9457 problem details."
        ),
        path="/schema",
        openapi_router=HeadRouter("/schema", route_handlers=[], include_in_schema=False),
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="The token set in COUNTER_ADMIN_TOKEN.",
                ),
                "abacusAdminKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="The counter's `admin_key`, answered by `/abacus/create`.",
                ),
                "abacusToken": SecurityScheme(
                    type="apiKey",
                    name="token",
                    security_scheme_in="query",
                    description="The counter's `admin_key`, answered by `/abacus/create`.",
                ),
            }
        ),
        render_plugins=[
            # Assets served by the app itself, so the docs render with no internet.
            SwaggerRenderPlugin(
                js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-standalone-preset.js",
                path=["/swagger", "/"],
                favicon="<link rel='icon' href='data:,'>",  # the default icon comes from a CDN
            ),
            JsonRenderPlugin(),
            YamlRenderPlugin(),
        ],
    )


class CounterApp(RequestContext, Litestar):
    """The Litestar app, with the request context (request id, access log) around everything it
    serves: a 404 for an unknown path, which no route middleware sees, gets both too. Everything
    else (routing, middleware, CORS, guards, exception handlers) is Litestar's own."""

    def __init__(self, *, access_log: AccessLog | None = None, traced: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.access_log = access_log
        self.traced = traced


def create_app(
    container: Container | None = None,
    settings: Settings | None = None,
    *,
    tune_gc: bool = False,
    **options: Any,
) -> CounterApp:
    """Build the app. `settings` default to the environment; `container` to one built from them
    (tests pass a container whose store provider they have overridden). `tune_gc` is for the
    server process (see entrypoints.runtime), not for tests that build many apps. `options` go
    to Litestar as they are (middleware, cors_config, guards, plugins...): they see every route,
    the increment routes included."""
    settings = settings or Settings.from_env()
    container = container or build_container(settings)
    limits = rate_limits(settings)  # none by default; after metrics and spans when set

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            app.state[SERVICE_STATE_KEY] = await start_service(container)
        except DomainError as error:
            # One line that says what to fix, before the server's own start-up failure report.
            logger.error("cannot open the store", extra={"backend": settings.backend, "error": str(error)})  # noqa: TRY400
            raise
        logger.info("store opened", extra={"backend": settings.backend})
        streams.start(await start_changes(container))
        forget = when_stopping(streams.stop)
        if tune_gc:
            tune_garbage_collector()
        try:
            yield
        finally:
            forget()
            streams.stop()
            shutdown = container.shutdown_resources()
            if shutdown is not None:
                await shutdown
            logger.info("store closed", extra={"backend": settings.backend})
            # Every request has been answered: write their lines now, even where a server ends
            # its worker processes without the interpreter's exit handlers.
            line_writer().flush()

    metrics: Metrics = container.metrics()
    tracing: Tracing = container.tracing()
    streams = EventStreams(_stream_limits(settings), metrics.event_streams_open.set)

    @asynccontextmanager
    async def observability(_app: Litestar) -> AsyncIterator[None]:
        # After the store opened (its counters are known), before it closes (the last read).
        try:
            async with metrics.flushing(FLUSH_INTERVAL_SECONDS):
                yield
        finally:
            tracing.shutdown()  # export the spans still queued

    # Metrics outermost of the app's middleware: what any other middleware answers is counted.
    middleware: list[Any] = [DefineMiddleware(RequestMetrics, metrics=metrics)]
    plugins: list[Any] = [StrictStructSchemaPlugin()]
    if tracing.enabled:
        middleware.append(SpanByRoute)
        plugins.append(tracing.plugin())
    state = _initial_state(settings)
    state[METRICS_STATE_KEY] = metrics
    state[EVENTS_STATE_KEY] = streams

    return CounterApp(
        route_handlers=[
            CounterController,
            NamespaceCounterController,
            *ONE_COUNTER_CONTROLLERS,
            countapi_router(),
            abacus_router(),
            HealthController,
            *BADGE_CONTROLLERS,
            PageController,
            *EVENT_CONTROLLERS,
            docs_redirect,
            serving_head(metrics_endpoint),
            create_static_files_router(path=DOCS_ASSETS_PATH, directories=[_DOCS_ASSETS_DIR]),
        ],
        dependencies={
            "counter_service": Provide(provide_counter_service, sync_to_thread=False),
            "backend_name": Provide(provide_backend_name, sync_to_thread=False),
            "event_streams": Provide(provide_event_streams, sync_to_thread=False),
        },
        lifespan=[lifespan, observability],
        state=State(state),
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=[release_dependency_group],
        openapi_config=_openapi_config(),
        # Metrics and spans first, then the rate limits: a refusal is counted and traced too.
        middleware=[*middleware, *limits.middleware, *options.pop("middleware", ())],
        plugins=[*plugins, *options.pop("plugins", ())],
        request_class=StrictJSONRequest,  # strict JSON bodies (entrypoints/http/bodies.py)
        request_max_body_size=settings.max_body_bytes,
        stores=limits.stores,
        cors_config=options.pop("cors_config", None) or cors_config(settings),
        debug=False,
        logging_config=None,  # configured once by entrypoints.logs, not by the framework
        access_log=AccessLog.configured() if settings.access_log else None,
        traced=tracing.enabled,
        **options,
    )


def _stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(
        max_streams=settings.events_max_streams,
        idle_timeout_seconds=settings.events_idle_timeout_seconds,
        heartbeat_seconds=settings.events_heartbeat_seconds,
        buffer_events=settings.events_buffer_events,
    )


def _initial_state(settings: Settings) -> dict[str, object]:
    return {
        BACKEND_STATE_KEY: settings.backend,
        ADMIN_TOKEN_STATE_KEY: settings.admin_token.encode(),
        FAST_PATH_STATE_KEY: settings.fast_path,
    }


def app_factory() -> Litestar:
    """For `uvicorn --factory entrypoints.http.app:app_factory` (what `counter serve` runs, in
    every worker process: each configures its own logging)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings=settings, tune_gc=True)
