"""The stores' own counters as metrics, without prometheus in any adapter.

The ConfigMap store counts its API calls, conflicts and retries in `ConfigMapStats`; the Redis
store counts its pipelines and the commands they carried (their mean size is the ratio). Those
are plain integers of one process. `StatsSync` adds what they rose by since its last run to
Prometheus counters, which are summed across workers like every other metric; it runs with
every flush of the metrics (each second, before a scrape, at the end: metrics.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter

from domain.ports import CounterRepository
from entrypoints.observability.metrics import Metrics


class _ConfigMapStats(Protocol):  # adapters.configmap.stats.ConfigMapStats, read only
    @property
    def api_writes(self) -> int: ...
    @property
    def api_reads(self) -> int: ...
    @property
    def conflicts(self) -> int: ...
    @property
    def throttled(self) -> int: ...
    @property
    def transient_errors(self) -> int: ...


class _RedisPipelines(Protocol):  # adapters.redis.RedisCounterRepository, read only
    @property
    def round_trips(self) -> int: ...
    @property
    def commands(self) -> int: ...


class StatsSync:
    """Adds the rise of each `(read, counter)` pair's value to its counter."""

    def __init__(self, pairs: list[tuple[Callable[[], float], Counter]]) -> None:
        self._pairs = pairs
        self._last = [0.0] * len(pairs)

    def __call__(self) -> None:
        for index, (read, counter) in enumerate(self._pairs):
            value = read()
            rise = value - self._last[index]
            if rise > 0:
                counter.inc(rise)
                self._last[index] = value


def stats_sync(repository: CounterRepository, metrics: Metrics) -> StatsSync | None:
    """The sync for `repository`'s own counters, or None when its store keeps none."""
    # Checked through sys.modules: a store that is not selected is never imported (the
    # Kubernetes client is heavy), and a repository of a module never imported is not of it.
    configmap = sys.modules.get("adapters.configmap.repository")
    if configmap is not None and isinstance(repository, configmap.ConfigMapCounterRepository):
        return _configmap_sync(repository.stats, metrics)
    redis = sys.modules.get("adapters.redis.repository")
    if redis is not None and isinstance(repository, redis.RedisCounterRepository):
        return _redis_sync(repository, metrics)
    return None


def _configmap_sync(stats: _ConfigMapStats, metrics: Metrics) -> StatsSync:
    r = metrics.registry
    writes = Counter("counter_configmap_api_writes", "Kubernetes API writes of the ConfigMap", registry=r)
    reads = Counter("counter_configmap_api_reads", "Kubernetes API reads of the ConfigMap", registry=r)
    conflicts = Counter(
        "counter_configmap_conflicts",
        "ConfigMap writes refused for a stale resourceVersion (409) and made again",
        registry=r,
    )
    retries = Counter(
        "counter_configmap_retries",
        "Kubernetes API calls made again after a 429 (throttled) or a transient failure",
        ["reason"],
        registry=r,
    )
    return StatsSync(
        [
            (lambda: stats.api_writes, writes),
            (lambda: stats.api_reads, reads),
            (lambda: stats.conflicts, conflicts),
            (lambda: stats.throttled, retries.labels("throttled")),
            (lambda: stats.transient_errors, retries.labels("transient")),
        ]
    )


def _redis_sync(repository: _RedisPipelines, metrics: Metrics) -> StatsSync:
    r = metrics.registry
    pipelines = Counter(
        "counter_redis_pipelines", "Pipelines sent to Redis (one round trip each)", registry=r
    )
    commands = Counter(
        "counter_redis_pipeline_commands",
        "Commands sent in those pipelines: their rise over the pipelines' is the mean batch size",
        registry=r,
    )
    return StatsSync(
        [
            (lambda: repository.round_trips, pipelines),
            (lambda: repository.commands, commands),
        ]
    )
