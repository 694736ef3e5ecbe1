"""Buffered updates render exactly as prometheus-client's own, once flushed."""

from __future__ import annotations

import math
import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.observability.buffered import BufferedCounter, BufferedHistogram
from entrypoints.observability.metrics import REQUEST_BUCKETS

# On the bounds, between them, past the last one, and zero.
VALUES = [0.0, 0.0005, 0.0007, 0.001, 0.3, 2.5, 10.0, 11.0, *(random.uniform(0, 12) for _ in range(200))]


def families() -> tuple[CollectorRegistry, Histogram, Counter]:
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", ["route"], buckets=REQUEST_BUCKETS, registry=registry)
    counter = Counter("t_requests", "t", ["route"], registry=registry)
    return registry, histogram, counter


def rendered(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def same(
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> bool:
    """Equal, but for the sums' last bits (floats added in another order)."""
    return got.keys() == expected.keys() and all(
        math.isclose(got[key], value, rel_tol=1e-12) if key[0].endswith("_sum") else got[key] == value
        for key, value in expected.items()
    )


def test_a_flushed_histogram_and_counter_render_as_direct_updates_do() -> None:
    direct, direct_histogram, direct_counter = families()
    buffered, histogram_family, counter_family = families()
    histogram = BufferedHistogram(histogram_family.labels("/x"))
    counter = BufferedCounter(counter_family.labels("/x"))
    for index, value in enumerate(VALUES):
        direct_histogram.labels("/x").observe(value)
        direct_counter.labels("/x").inc()
        histogram.observe(value)
        counter.inc()
        if index % 50 == 0:  # flushes at any moment add up the same
            histogram.flush()
            counter.flush()
    assert not same(rendered(buffered), rendered(direct))  # not yet flushed: behind
    histogram.flush()
    counter.flush()
    assert same(rendered(buffered), rendered(direct))
    assert len(rendered(direct)) == len(REQUEST_BUCKETS) + 1 + 2 + 1  # buckets, +Inf, count, sum, counter
    histogram.flush()  # nothing gathered since: nothing added
    counter.flush()
    assert same(rendered(buffered), rendered(direct))
