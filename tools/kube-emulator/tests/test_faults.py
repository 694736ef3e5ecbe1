"""Fault injection: what a real API server does under load and failure, and what the adapter's
failure tests rely on (errors that apply nothing, late writes, timeouts, limits, stats)."""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

import pytest
import urllib3
from kube_helpers import (
    CM_PATH,
    NS,
    Raw,
    api_error,
    configmap,
)

from kube_emulator import EmulatorAdminClient, Faults, KubeApiEmulator

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("faults", "code", "reason"),
    [
        (Faults(conflict=1.0), 409, "Conflict"),
        (Faults(too_many_requests=1.0, retry_after=3), 429, "TooManyRequests"),
        (Faults(server_error=1.0), 500, "InternalError"),
    ],
)
def test_injected_errors_apply_nothing(
    raw: Raw, kube_api: KubeApiEmulator, faults: Faults, code: int, reason: str
) -> None:
    kube_api.set_faults(faults)
    status, headers, body = raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    assert (status, body["reason"]) == (code, reason)
    if code == 429:
        assert headers["Retry-After"] == "3"
        assert body["details"]["retryAfterSeconds"] == 3
    assert kube_api.get_configmap(NS, "counter") is None
    assert raw("GET", f"{CM_PATH}/counter")[0] == 404, "writes_only spares reads"
    stats = kube_api.stats()
    assert sum(stats["faults"].values()) == 1
    assert stats["writes"] == 0


def test_client_sees_429_with_retry_after(core: Any, kube_api: KubeApiEmulator) -> None:
    kube_api.set_faults(Faults(too_many_requests=1.0, retry_after=2))
    # POST: urllib3 retries idempotent methods on 429 + Retry-After by itself, never a POST
    error, body = api_error(lambda: core.create_namespaced_config_map(NS, configmap("counter", {})))
    assert (error.status, body["reason"]) == (429, "TooManyRequests")
    assert error.headers is not None
    assert error.headers["Retry-After"] == "2"
    kube_api.clear_faults()
    core.create_namespaced_config_map(NS, configmap("counter", {}))


def test_timeout_before_applies_nothing(core: Any, kube_api: KubeApiEmulator) -> None:
    core.create_namespaced_config_map(NS, configmap("counter", {"default": "1"}))
    kube_api.set_faults(Faults(timeout_before=1.0, timeout_seconds=0.6))
    with pytest.raises(urllib3.exceptions.HTTPError):  # a read timeout
        core.patch_namespaced_config_map("counter", NS, {"data": {"default": "2"}}, _request_timeout=0.2)
    time.sleep(0.6)  # past the held answer: the write never lands, not even late
    assert kube_api.get_configmap(NS, "counter")["data"] == {"default": "1"}  # type: ignore[index]


def test_timeout_after_applies_the_write_the_client_gave_up_on(core: Any, kube_api: KubeApiEmulator) -> None:
    core.create_namespaced_config_map(NS, configmap("counter", {"default": "1"}))
    kube_api.set_faults(Faults(timeout_after=1.0, timeout_seconds=0.6))
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.patch_namespaced_config_map("counter", NS, {"data": {"default": "2"}}, _request_timeout=0.2)
    assert kube_api.get_configmap(NS, "counter")["data"] == {"default": "2"}  # type: ignore[index]
    assert kube_api.stats()["faults"] == {"timeout_after": 1}


LATE_BODIES = {
    500: {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request timed out",
        "code": 500,
    },
    503: {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request timed out",
        "reason": "ServiceUnavailable",
        "code": 503,
    },
    504: {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Timeout: request did not complete within requested timeout - context deadline exceeded",
        "reason": "Timeout",
        "details": {},
        "code": 504,
    },
}


def _json_patch(raw: Raw, version: str, value: str) -> tuple[int, http.client.HTTPMessage, Any]:
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/data/default", "value": value},
    ]
    return raw("PATCH", f"{CM_PATH}/counter", patch, "application/json-patch+json")


@pytest.mark.parametrize("code", [500, 503, 504])
def test_a_late_server_error_answers_first_and_commits_before_the_next_write(
    raw: Raw, kube_api: KubeApiEmulator, code: int
) -> None:
    created = raw("POST", CM_PATH, configmap("counter", {"default": "1"}))[2]
    version = created["metadata"]["resourceVersion"]
    kube_api.set_faults(Faults(server_error_late=1.0, late_status=code, max_faults=1))
    status, _, body = _json_patch(raw, version, "2")
    assert (status, body) == (code, LATE_BODIES[code])
    assert list(body) == list(LATE_BODIES[code]), "same key order as the Go struct"
    # Not there yet: a read does not show it (the apiserver gave up on etcd, etcd did not).
    assert raw("GET", f"{CM_PATH}/counter")[2]["data"] == {"default": "1"}
    assert kube_api.stats()["late_writes_pending"] == 1
    # The next write finds it committed: its own test of the same version fails.
    status, _, body = _json_patch(raw, version, "3")
    assert (status, body["reason"]) == (422, "Invalid")
    stored = kube_api.get_configmap(NS, "counter")
    assert stored is not None
    assert stored["data"] == {"default": "2"}
    stats = kube_api.stats()
    assert (stats["late_writes_applied"], stats["late_writes_pending"]) == (1, 0)
    assert stats["faults"] == {"server_error_late": 1}


def test_a_late_write_lands_only_on_the_version_it_was_based_on(raw: Raw, kube_api: KubeApiEmulator) -> None:
    created = raw("POST", CM_PATH, configmap("counter", {"default": "1"}))[2]
    version = created["metadata"]["resourceVersion"]
    kube_api.set_faults(Faults(server_error_late=1.0, max_faults=2))
    assert _json_patch(raw, version, "2")[0] == 500
    # The first late write is committed before this one, which is late too, on the same version.
    assert _json_patch(raw, version, "3")[0] == 500
    kube_api.clear_faults()
    raw("PATCH", f"{CM_PATH}/counter", {"data": {"other": "x"}}, "application/merge-patch+json")
    # The second one's compare failed when it was committed: the first one's value stays.
    assert raw("GET", f"{CM_PATH}/counter")[2]["data"] == {"default": "2", "other": "x"}
    stats = kube_api.stats()
    assert (stats["late_writes_applied"], stats["late_writes_dropped"]) == (1, 1)


def test_a_late_write_before_the_next_request_is_seen_by_a_read(raw: Raw, kube_api: KubeApiEmulator) -> None:
    created = raw("POST", CM_PATH, configmap("counter", {"default": "1"}))[2]
    kube_api.set_faults(Faults(server_error_late=1.0, late_apply="next_request", late_status=503))
    assert _json_patch(raw, created["metadata"]["resourceVersion"], "2")[0] == 503
    assert raw("GET", f"{CM_PATH}/counter")[2]["data"] == {"default": "2"}


def test_a_late_write_after_a_delay_lands_by_itself(raw: Raw, kube_api: KubeApiEmulator) -> None:
    created = raw("POST", CM_PATH, configmap("counter", {"default": "1"}))[2]
    kube_api.set_faults(Faults(server_error_late=1.0, late_apply="delay", late_delay=0.05, late_status=504))
    assert _json_patch(raw, created["metadata"]["resourceVersion"], "2")[0] == 504
    deadline = time.monotonic() + 30  # a guard against a hang, not a speed check
    while kube_api.stats()["late_writes_applied"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kube_api.get_configmap(NS, "counter")["data"] == {"default": "2"}  # type: ignore[index]


def test_a_reset_drops_the_late_writes(raw: Raw, kube_api: KubeApiEmulator) -> None:
    created = raw("POST", CM_PATH, configmap("counter", {"default": "1"}))[2]
    kube_api.set_faults(Faults(server_error_late=1.0))
    assert _json_patch(raw, created["metadata"]["resourceVersion"], "2")[0] == 500
    kube_api.reset()
    assert kube_api.stats()["late_writes_pending"] == 0
    raw("POST", CM_PATH, configmap("counter", {"default": "7"}))
    assert kube_api.get_configmap(NS, "counter")["data"] == {"default": "7"}  # type: ignore[index]


def test_max_faults_fails_exactly_the_first_writes(raw: Raw, kube_api: KubeApiEmulator) -> None:
    kube_api.set_faults(Faults(conflict=1.0, max_faults=2))
    codes = [raw("POST", CM_PATH, configmap(f"cm-{i}", {}))[0] for i in range(4)]
    assert codes == [409, 409, 201, 201]
    assert kube_api.stats()["faults"] == {"conflict": 2}


def raw_body(raw: Raw, path: str) -> bytes:
    """The stored object's body as the server sends it, for its size."""
    connection = http.client.HTTPConnection("127.0.0.1", raw.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def test_stats_tell_the_largest_object_and_the_writes_refused_as_too_long(
    raw: Raw, kube_api: KubeApiEmulator
) -> None:
    limit = 1024 * 1024
    assert raw("POST", CM_PATH, configmap("big", {"v": "x" * (limit - 10)}))[0] == 201
    assert raw("POST", CM_PATH, configmap("small", {"v": "x"}))[0] == 201
    status, _, body = raw("POST", CM_PATH, configmap("too-big", {"v": "x" * limit, "w": "y"}))
    assert (status, body["details"]["causes"][0]["reason"]) == (422, "FieldValueTooLong")
    patch = {"data": {"w": "y" * 11}}
    assert raw("PATCH", f"{CM_PATH}/big", patch, "application/merge-patch+json")[0] == 422
    stats = kube_api.stats()
    assert stats["too_long"] == 2
    assert stats["largest_data_bytes"] == limit - 10
    # The whole object as stored: its data and its metadata, encoded.
    assert stats["largest_object_bytes"] == len(raw_body(raw, f"{CM_PATH}/big"))
    kube_api.reset_stats()
    stats = kube_api.stats()
    assert (stats["largest_object_bytes"], stats["too_long"], stats["configmaps"]) == (0, 0, 2)


def test_fault_shares_are_seeded_and_can_include_reads(raw: Raw, kube_api: KubeApiEmulator) -> None:
    def codes() -> list[int]:
        kube_api.set_faults(Faults(conflict=0.3, server_error=0.2, writes_only=False, seed=7))
        return [raw("GET", f"{CM_PATH}/counter")[0] for _ in range(200)]

    first = codes()
    assert first == codes(), "the same seed draws the same faults"
    assert 30 <= first.count(409) <= 90
    assert 15 <= first.count(500) <= 65
    assert first.count(404) == 200 - first.count(409) - first.count(500)
    kube_api.clear_faults()
    assert raw("GET", f"{CM_PATH}/counter")[0] == 404


def test_write_delay_is_paid_under_the_store_lock(kube_api: KubeApiEmulator) -> None:
    kube_api.write_delay = 0.05
    done = []

    def write(index: int) -> None:
        connection = Raw(kube_api.port)
        done.append(connection("POST", CM_PATH, configmap(f"cm-{index}", {}))[0])
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done == [201] * 4
    assert time.perf_counter() - started >= 4 * 0.05, "concurrent writes queue like etcd commits"


def test_stats_count_requests_writes_and_conflicts(raw: Raw, kube_api: KubeApiEmulator) -> None:
    raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    stale = raw("GET", f"{CM_PATH}/counter")[2]
    raw("PATCH", f"{CM_PATH}/counter", {"data": {"default": "1"}}, "application/merge-patch+json")
    raw("PUT", f"{CM_PATH}/counter", stale)
    raw("GET", CM_PATH)
    raw("DELETE", f"{CM_PATH}/counter")
    stats = kube_api.stats()
    assert stats["requests"] == {"create": 2, "get": 1, "patch": 1, "update": 1, "list": 1, "delete": 1}
    assert (stats["writes"], stats["conflicts"], stats["already_exists"]) == (3, 1, 1)
    kube_api.reset()
    assert kube_api.stats()["requests_total"] == 0


def test_admin_endpoints_steer_an_emulator_over_http(kube_api: KubeApiEmulator, raw: Raw) -> None:
    admin = EmulatorAdminClient(kube_api.url)
    faults = Faults(conflict=0.25, retry_after=4, timeout_seconds=1.5, writes_only=False, seed=3)
    admin.set_faults(faults)
    assert admin.faults() == faults
    assert kube_api.faults == faults
    admin.clear_faults()
    assert not kube_api.faults.active
    admin.set_write_delay(0.003)
    assert kube_api.write_delay == 0.003
    raw("POST", CM_PATH, configmap("counter", {}))
    assert admin.stats()["writes"] == 1
    admin.reset()
    assert admin.stats()["configmaps"] == 0
    status, _, body = raw("POST", "/_emulator/faults", {"conflict": 2})
    assert status == 400
    assert "between 0 and 1" in body["error"]


def test_faults_refuse_impossible_settings() -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        Faults(conflict=0.6, server_error=0.6)
    with pytest.raises(ValueError, match="unknown fault settings"):
        Faults.from_json({"conflicts": 0.1})
    with pytest.raises(ValueError, match="late_status"):
        Faults(server_error_late=1.0, late_status=502)
    with pytest.raises(ValueError, match="late_apply"):
        Faults(server_error_late=1.0, late_apply="never")
    with pytest.raises(ValueError, match="add up to more than 1"):
        Faults(server_error=0.5, server_error_late=0.6)
