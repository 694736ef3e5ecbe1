"""`GET /metrics`: a Litestar route like every other (the middleware, the access log and the
error table apply), left out of the OpenAPI description: it is for Prometheus, not for clients."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from entrypoints.observability.metrics import CONTENT_TYPE, Metrics

METRICS_STATE_KEY = "metrics"


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(state: State) -> Response[bytes]:
    """Every metric in the Prometheus text format (version 0.0.4)."""
    metrics: Metrics = state[METRICS_STATE_KEY]
    return Response(metrics.render(), media_type=CONTENT_TYPE)
