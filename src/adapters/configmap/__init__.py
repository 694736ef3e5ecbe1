"""Counters in one Kubernetes ConfigMap, written with compare-and-swap and group commit.

Readable with `kubectl get configmap NAME -o yaml`: each counter is one data key, its name, whose
value is `{"count": N, "created_at": ..., "updated_at": ...}`; `_idempotency` and `_writers` are
the store's own bookkeeping (codec). Every write tests the resourceVersion it was based on (api);
while one write is in flight, further operations queue up and go into the next write together,
and each caller still gets its own result, as if applied one by one (batch, commit, repository).
A write whose answer was lost is settled by re-reading, so even a timeout is answered exactly;
only when the API stays unreachable past the retry bounds (retry) is the outcome reported as
unknown (settle). A write budget (budget) paces the API writes: under load each write carries more.

Limits: the `_idempotency` table keeps at most 1000 records and 256 KiB by default, dropping the
oldest first; a key dropped before its TTL would count again. New counters are refused (503) once
the data nears the 1 MiB ConfigMap limit.

The modules, from the outside in: repository (the port, the queue, opening), commit (one batch
from read to compare-and-swap), settle (lost answers), reads (shared GETs), batch (operations
applied in memory), budget (API writes per second), retry (bounds and backoff), api (the
Kubernetes calls and their failures), codec (the stored format), stats.
"""

from adapters.configmap.api import new_api_client, resolve_namespace
from adapters.configmap.codec import IDEMPOTENCY_KEY
from adapters.configmap.repository import (
    ConfigMapCounterRepository,
    ConfigMapOptions,
    open_configmap_repository,
)
from adapters.configmap.stats import ConfigMapStats

__all__ = [
    "IDEMPOTENCY_KEY",
    "ConfigMapCounterRepository",
    "ConfigMapOptions",
    "ConfigMapStats",
    "new_api_client",
    "open_configmap_repository",
    "resolve_namespace",
]
