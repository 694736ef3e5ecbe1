"""Counters in one Kubernetes ConfigMap, written with compare-and-swap and group commit.

Readable with `kubectl get configmap NAME -o yaml`: each counter is one data key (its key, for a
counter of the namespace `default` named as before namespaces; `-{length}-{namespace}{key}`
otherwise: names), whose value is `{"count": N, "created_at": ..., "updated_at": ...}`;
`_idempotency` and `_writers` are the store's own bookkeeping (codec). Every write tests the
resourceVersion it was based on (api); while one write is in flight, further operations queue up
and go into the next write together, and each caller still gets its own result, as if applied one
by one (batch, commit, repository). A write whose answer does not prove a refusal (any 5xx, a
reset connection, a timeout: etcd may commit it after the answer) is settled through the writers'
sequence, so even then the answer is exact (settle); only when the API stays unreachable past the
retry bounds (retry) is the outcome reported as unknown (OutcomeUnknownError: retry with the same
Idempotency-Key). A write budget (budget) paces the API writes: under load each write carries
more. Several writers (replicas, worker processes) share the ConfigMap by compare-and-swap alone;
a writer that sees others at work reads before each write and leaves them a turn after it
(contention), so none starves, and a write refused because another one won gives its budget token
back.

What it holds (room): every byte written is counted, keys and values as serialised, `_writers`
at its largest; it is full for anything new at 1 MiB less 64 KiB, and no write that grows the
data passes 1 MiB less 16 KiB, so the API's 1 MiB limit is never reached. About 940 KiB are for
counters (140 to 195 bytes each, by the length of the name, growth of the count included) and
Idempotency-Key records (about 260 bytes each): some 3,700 keys with no counters, some 5,000 to
7,000 counters with no keys. A key is kept for its whole TTL whatever other clients send, and
dropped once expired; none is ever forgotten early to make room. When the
ConfigMap is full, only what is new is refused, at once and before any write: a new counter name
(StoreFullError, 507 with Retry-After 3600: full until counters are deleted) and a new key
(IdempotencyTableFullError, 503 until the oldest record expires, Retry-After at most 3600 s);
existing counters can always be incremented, set and deleted, because the room their counts may
still grow by is kept in reserve. The API's own 422 `Too long` is a permanent StoreFullError,
never retried.

The modules, from the outside in: repository (the port, the queue, opening), commit (one batch
from read to compare-and-swap), contention (the other writers), settle (lost answers), reads
(shared GETs), batch (operations
applied in memory), room (size accounting, full), budget (API writes per second), retry (bounds
and backoff), api (the Kubernetes calls and their failures), codec (the stored format), stats.
"""

from adapters.configmap.api import new_api_client, resolve_namespace
from adapters.configmap.codec import IDEMPOTENCY_KEY
from adapters.configmap.repository import (
    ConfigMapCounterRepository,
    ConfigMapOptions,
    open_configmap_repository,
)
from adapters.configmap.stats import ConfigMapStats
from domain.errors import IdempotencyTableFullError, StoreFullError

__all__ = [
    "IDEMPOTENCY_KEY",
    "ConfigMapCounterRepository",
    "ConfigMapOptions",
    "ConfigMapStats",
    "IdempotencyTableFullError",
    "StoreFullError",
    "new_api_client",
    "open_configmap_repository",
    "resolve_namespace",
]
