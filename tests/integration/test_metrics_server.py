"""GET /metrics of a real `counter serve`: with two workers the counts of both, exactly; store
failures counted; and every metric the Grafana dashboard queries is exported."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server_process import running_server

if TYPE_CHECKING:
    from kube_emulator import KubeApiEmulator
    from tests.integration.redis_fixtures import RedisServer

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "counter-dashboard.json"
STORE_SPECIFIC = ("counter_redis_", "counter_configmap_")
JSON = {"content-type": "application/json"}
# A new connection for every request: the kernel hands each to either worker.
CLOSE = {"connection": "close"}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by name and labels (the text must parse as a whole)."""
    text = httpx.get(f"{url}/metrics", headers=CLOSE, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[tuple[str, ...], float]:
    """The request counts, less those of /metrics itself (each scrape adds one)."""
    counts = {}
    for (name, labels), count in found.items():
        if name == "counter_requests_total" and dict(labels)["route"] != "/metrics":
            counts[tuple(dict(labels)[k] for k in ("route", "method", "status"))] = count
    return counts


def without(counts: dict[tuple[str, ...], float], key: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    return {k: v for k, v in counts.items() if k != key}


def wait_for(url: str, name: str, *, above: float = 0, timeout: float = 10.0, **labels: str) -> float:
    """The value of a metric the workers read in every second, once it is above `above`."""
    deadline = time.monotonic() + timeout
    while True:
        found = get(scrape(url), name, **labels)
        if found > above or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.slow
def test_two_workers_count_every_request_exactly_once(
    tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    metrics_parent = tmp_path / "metrics"
    metrics_parent.mkdir()
    env = {
        "COUNTER_BACKEND": "redis",
        "COUNTER_REDIS_URL": redis_url,
        "COUNTER_REDIS_PREFIX": f"metrics-{tmp_path.name}:",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_parent),
    }
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        (directory,) = metrics_parent.iterdir()  # the server's own, fresh
        with httpx.Client(base_url=server.url, headers=CLOSE, timeout=10) as client:
            for _ in range(37):
                assert client.post("/counter").status_code == 200
            for _ in range(5):
                assert client.post("/counters/x", content=b'{"by": }', headers=JSON).status_code == 400
            for _ in range(11):
                assert client.get("/counters/x").status_code == 200
        expected = {
            ("/counter", "POST", "200"): 37,
            ("/counters/{name}", "POST", "400"): 5,
            ("/counters/{name}", "GET", "200"): 11,
        }
        ready = ("/health/ready", "GET", "200")  # the start-up probes of running_server
        # Each worker writes its counts every second: wait for that, then every scrape
        # (answered by either worker) has them all, exactly.
        assert wait_until(lambda: without(requests_of(scrape(server.url)), ready) == expected)
        scrapes = [scrape(server.url) for _ in range(6)]
        for found in scrapes:
            counts = requests_of(found)
            assert counts.pop(ready, 0) >= 1
            assert counts == expected
            assert get(found, "counter_increments_total") == 37
            calls = "counter_store_operation_duration_seconds_count"
            assert get(found, calls, store="redis", operation="increment") == 37
            assert get(found, calls, store="redis", operation="get") == 11
            assert get(found, "counter_store_errors_total", store="redis", operation="increment") == 0
            duration = {"route": "/counter", "method": "POST"}
            assert get(found, "counter_request_duration_seconds_count", **duration) == 37
            assert get(found, "counter_request_duration_seconds_bucket", **duration, le="+Inf") == 37
        assert wait_for(server.url, "counter_redis_pipeline_commands_total", above=37 + 11 - 1) >= 48
        assert wait_for(server.url, "counter_redis_pipelines_total") >= 1

        # A worker killed: uvicorn replaces it; its counts stay, its live gauge goes.
        dead = kill_a_worker(server.process.pid, directory)
        assert wait_until(lambda: not (directory / f"gauge_livemax_{dead}.db").exists())
        assert wait_until(lambda: len(list(directory.glob("gauge_livemax_*.db"))) == 2)  # its replacement
        found = scrape(server.url)
        assert without(requests_of(found), ready) == expected
        assert get(found, "counter_increments_total") == 37

        redis_server.stop()
        try:
            with httpx.Client(base_url=server.url, headers=CLOSE, timeout=10) as client:
                for _ in range(3):
                    assert client.post("/counter").status_code == 503
        finally:
            redis_server.start()
        failed = {**expected, ("/counter", "POST", "503"): 3}
        assert wait_until(lambda: without(requests_of(scrape(server.url)), ready) == failed)
        found = scrape(server.url)
        assert get(found, "counter_store_errors_total", store="redis", operation="increment") == 3
        assert requests_of(found)[("/counter", "POST", "503")] == 3
        assert get(found, "counter_increments_total") == 37
        assert directory.is_dir()
    assert list(metrics_parent.iterdir()) == [], "the server removes its metrics directory when it stops"


def kill_a_worker(server_pid: int, directory: Path) -> int:
    """SIGKILL one worker of the server we started (a pid that wrote metrics, and our child)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    writers = {path.stem.rpartition("_")[2] for path in directory.glob("counter_*.db")}
    (pid, *_) = sorted(writers & set(children))
    assert (directory / f"gauge_livemax_{pid}.db").exists()
    os.kill(int(pid), signal.SIGKILL)
    return int(pid)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def dashboard_metric_names() -> set[str]:
    """Every metric name in the dashboard's PromQL (panel targets and template queries)."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    names = {name for query in queries for name in re.findall(r"\bcounter_[a-z_]+\b", query)}
    assert len(names) >= 8, names
    return names


def test_the_dashboard_queries_only_the_metrics_of_this_service() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "counter-web-server"
    for name in dashboard_metric_names():
        assert name.endswith(("_total", "_bucket", "_info")), f"{name}: a sample name as /metrics has it"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "configmap"])
def test_every_metric_the_dashboard_queries_is_exported(
    backend: str, tmp_path: Path, redis_url: str, kube_api: KubeApiEmulator, kube_kubeconfig: Path
) -> None:
    env = {"COUNTER_BACKEND": backend}
    if backend == "redis":
        env |= {"COUNTER_REDIS_URL": redis_url, "COUNTER_REDIS_PREFIX": f"dash-{tmp_path.name}:"}
    else:
        env |= {"COUNTER_KUBECONFIG": str(kube_kubeconfig), "COUNTER_CONFIGMAP_NAME": "dash-store"}
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        with httpx.Client(base_url=server.url, headers=CLOSE, timeout=10) as client:
            for _ in range(5):
                assert client.post("/counters/dash").status_code == 200
            assert client.get("/counters/dash").status_code == 200
        read_in = (
            "counter_redis_pipelines_total" if backend == "redis" else "counter_configmap_api_writes_total"
        )
        assert wait_for(server.url, read_in) > 0
        exported = {name for name, _labels in scrape(server.url)}
    wanted = {
        name
        for name in dashboard_metric_names()
        if not name.startswith(STORE_SPECIFIC) or name.startswith(f"counter_{backend}_")
    }
    assert wanted - exported == set()
