"""The emulated Kubernetes API, checked with the clients that will talk to it.

The official Python client and kubectl must not be able to tell it from a real API server for
ConfigMaps: same verbs, same concurrency rules, same `Status` bodies (compared with the shapes in
the shared `kube-api` folder), plus fault injection for the adapter's failure tests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from kube_emulator import EmulatorAdminClient, Faults, KubeApiEmulator

pytestmark = pytest.mark.integration

# Shapes recorded from a real API server: $KUBE_API_SHAPES, else shared/kube-api beside the
# repository (this file is <repository>/tools/kube-emulator/tests/test_kube_emulator.py).
BESIDE_THE_REPOSITORY = Path(__file__).resolve().parents[4] / "shared" / "kube-api"
SHARED = Path(os.environ.get("KUBE_API_SHAPES") or BESIDE_THE_REPOSITORY)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared Kubernetes API shapes at {SHARED}")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
CONFLICT_TEXT = "the object has been modified; please apply your changes to the latest version and try again"
NS = "default"
CM_PATH = "/api/v1/namespaces/default/configmaps"


# --- helpers ----------------------------------------------------------------------------------


def configmap(name: str, data: dict[str, str], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}, "data": data}


class Raw:
    """Plain HTTP to the emulator, to see exact bodies and headers (one keep-alive connection)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, Any]:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type, **(headers or {})}
        self._connection.request(method, path, body=payload, headers=all_headers)
        response = self._connection.getresponse()
        data = response.read()
        document = (
            json.loads(data)
            if response.getheader("Content-Type", "").startswith("application/json")
            else data
        )
        return response.status, response.headers, document

    def close(self) -> None:
        self._connection.close()


@pytest.fixture
def raw(kube_api: KubeApiEmulator) -> Iterator[Raw]:
    connection = Raw(kube_api.port)
    yield connection
    connection.close()


@pytest.fixture
def core(kube_kubeconfig: Path) -> Iterator[Any]:
    """`CoreV1Api` built the way the adapter builds it: from the kubeconfig file."""
    api_client = config.new_client_from_config(config_file=str(kube_kubeconfig))  # type: ignore[no-untyped-call]
    yield client.CoreV1Api(api_client)
    api_client.close()


def api_error(call: Callable[[], Any]) -> tuple[ApiException, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value, json.loads(caught.value.body or "{}")


def shared(name: str) -> Any:
    return json.loads((SHARED / name).read_text(encoding="utf-8"))


# --- the official Python client ---------------------------------------------------------------


def test_client_creates_reads_lists_replaces_patches_and_deletes(core: Any) -> None:
    created = core.create_namespaced_config_map(NS, configmap("counter", {"default": "0"}))
    assert created.metadata.namespace == NS
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    versions = [created.metadata.resource_version]

    read = core.read_namespaced_config_map("counter", NS)
    assert read.data == {"default": "0"}
    assert read.metadata.resource_version == versions[-1]

    read.data["default"] = "1"
    versions.append(core.replace_namespaced_config_map("counter", NS, read).metadata.resource_version)
    merged = core.patch_namespaced_config_map(
        "counter", NS, {"data": {"extra": "x"}}, _content_type="application/merge-patch+json"
    )
    assert merged.data == {"default": "1", "extra": "x"}
    versions.append(merged.metadata.resource_version)
    # a dict body goes out as a strategic merge patch; null removes the key
    strategic = core.patch_namespaced_config_map("counter", NS, {"data": {"extra": None}})
    assert strategic.data == {"default": "1"}
    versions.append(strategic.metadata.resource_version)
    json_patched = core.patch_namespaced_config_map(
        "counter",
        NS,
        [
            {"op": "test", "path": "/data/default", "value": "1"},
            {"op": "replace", "path": "/data/default", "value": "2"},
        ],
    )
    assert json_patched.data == {"default": "2"}
    versions.append(json_patched.metadata.resource_version)
    assert len(set(versions)) == len(versions), f"every write gets a new resourceVersion: {versions}"

    listed = core.list_namespaced_config_map(NS)
    assert [item.metadata.name for item in listed.items] == ["counter"]
    assert listed.metadata.resource_version

    core.delete_namespaced_config_map("counter", NS)
    error, body = api_error(lambda: core.read_namespaced_config_map("counter", NS))
    assert (error.status, body["reason"]) == (404, "NotFound")


def test_lists_are_config_map_lists_per_namespace_and_across_namespaces(core: Any, raw: Raw) -> None:
    core.create_namespaced_config_map(NS, configmap("one", {"a": "1"}, labels={"app": "counter"}))
    core.create_namespaced_config_map("team-a", configmap("two", {"b": "2"}))

    status, _, body = raw("GET", CM_PATH)
    assert status == 200
    assert (body["kind"], body["apiVersion"]) == ("ConfigMapList", "v1")
    assert body["metadata"]["resourceVersion"]
    assert [item["metadata"]["name"] for item in body["items"]] == ["one"]
    assert "kind" not in body["items"][0], "list items carry no kind, as on a real server"

    everywhere = core.list_config_map_for_all_namespaces()
    assert sorted((i.metadata.namespace, i.metadata.name) for i in everywhere.items) == [
        ("default", "one"),
        ("team-a", "two"),
    ]
    assert [
        i.metadata.name for i in core.list_config_map_for_all_namespaces(label_selector="app=counter").items
    ] == ["one"]
    first = core.list_config_map_for_all_namespaces(limit=1)
    assert len(first.items) == 1
    assert first.metadata._continue
    rest = core.list_config_map_for_all_namespaces(limit=1, _continue=first.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["two"]


def test_client_sees_already_exists_conflict_and_not_found(core: Any) -> None:
    original = core.create_namespaced_config_map(NS, configmap("counter", {"default": "0"}))
    error, body = api_error(lambda: core.create_namespaced_config_map(NS, configmap("counter", {})))
    assert (error.status, body["reason"]) == (409, "AlreadyExists")

    core.patch_namespaced_config_map("counter", NS, {"data": {"default": "1"}})
    error, body = api_error(lambda: core.replace_namespaced_config_map("counter", NS, original))
    assert (error.status, body["reason"]) == (409, "Conflict")
    assert CONFLICT_TEXT in body["message"]

    # a PUT without a resourceVersion is an unconditional update
    unconditional = core.replace_namespaced_config_map("counter", NS, configmap("counter", {"default": "7"}))
    assert unconditional.data == {"default": "7"}

    # a patch that carries a stale resourceVersion is conditional
    stale = {"metadata": {"resourceVersion": original.metadata.resource_version}, "data": {"default": "8"}}
    error, body = api_error(
        lambda: core.patch_namespaced_config_map(
            "counter", NS, stale, _content_type="application/merge-patch+json"
        )
    )
    assert (error.status, body["reason"]) == (409, "Conflict")

    for call in (
        lambda: core.replace_namespaced_config_map("missing", NS, configmap("missing", {})),
        lambda: core.patch_namespaced_config_map("missing", NS, {"data": {"a": "b"}}),
        lambda: core.delete_namespaced_config_map("missing", NS),
    ):
        error, body = api_error(call)
        assert (error.status, body["reason"], body["details"]["name"]) == (404, "NotFound", "missing")


def test_failed_json_patch_test_is_422_and_changes_nothing(core: Any, kube_api: KubeApiEmulator) -> None:
    core.create_namespaced_config_map(NS, configmap("counter", {"default": "5"}))
    before = kube_api.get_configmap(NS, "counter")
    patch = [
        {"op": "test", "path": "/data/default", "value": "4"},
        {"op": "replace", "path": "/data/default", "value": "6"},
    ]
    error, body = api_error(lambda: core.patch_namespaced_config_map("counter", NS, patch))
    assert (error.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["message"] == "testing value /data/default failed: test failed"
    assert kube_api.get_configmap(NS, "counter") == before


def test_an_update_that_changes_nothing_keeps_the_resource_version(
    core: Any, kube_api: KubeApiEmulator
) -> None:
    created = core.create_namespaced_config_map(NS, configmap("counter", {"default": "1"}))
    writes = kube_api.stats()["writes"]
    same = core.patch_namespaced_config_map("counter", NS, {"data": {"default": "1"}})
    assert same.metadata.resource_version == created.metadata.resource_version
    assert kube_api.stats()["writes"] == writes


def test_validation_matches_the_real_server(core: Any, raw: Raw) -> None:
    error, body = api_error(
        lambda: core.create_namespaced_config_map(NS, configmap("bad", {"no spaces": "x"}))
    )
    assert (error.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith(
        'ConfigMap "bad" is invalid: data[no spaces]: Invalid value: "no spaces": '
    )
    assert body["details"]["causes"][0]["field"] == "data[no spaces]"

    limit = 1024 * 1024
    core.create_namespaced_config_map(NS, configmap("just-fits", {"v": "x" * limit}))
    error, body = api_error(
        lambda: core.create_namespaced_config_map(NS, configmap("too-big", {"v": "x" * limit, "w": "y"}))
    )
    assert (error.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == f'ConfigMap "too-big" is invalid: []: Too long: must have at most {limit} bytes'
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTooLong",
            "message": f"Too long: must have at most {limit} bytes",
            "field": "[]",
        }
    ]

    status, _, body = raw("POST", CM_PATH, configmap("typed", {"n": 1}))  # type: ignore[dict-item]
    assert (status, body["reason"]) == (400, "BadRequest")
    assert "cannot unmarshal number" in body["message"]

    status, _, body = raw(
        "POST", CM_PATH + "?fieldValidation=Strict", {**configmap("strict", {}), "spec": {}}
    )
    assert (status, body["message"]) == (400, 'strict decoding error: unknown field "spec"')

    # a plain storage error on the real server: code 500 and no reason at all
    status, _, body = raw("POST", CM_PATH, configmap("versioned", {}, resourceVersion="5"))
    assert (status, body.get("reason")) == (500, None)
    assert body["message"] == "resourceVersion should not be set on objects to be created"


def _protobuf_field(number: int, payload: bytes) -> bytes:
    def varint(value: int) -> bytes:
        out = bytearray()
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_protobuf_bodies_from_typed_go_clients_are_understood(raw: Raw) -> None:
    """client-go's typed clients (`kubectl create configmap`) POST protobuf and accept JSON back."""
    entry = _protobuf_field(1, b"default") + _protobuf_field(2, b"41")
    configmap_message = _protobuf_field(1, _protobuf_field(1, b"counter")) + _protobuf_field(2, entry)
    type_meta = _protobuf_field(1, b"v1") + _protobuf_field(2, b"ConfigMap")
    body = b"k8s\x00" + _protobuf_field(1, type_meta) + _protobuf_field(2, configmap_message)
    connection = http.client.HTTPConnection("127.0.0.1", raw.port, timeout=10)
    try:
        headers = {
            "Content-Type": "application/vnd.kubernetes.protobuf",
            "Accept": "application/vnd.kubernetes.protobuf,application/json",
        }
        connection.request("POST", CM_PATH, body=body, headers=headers)
        response = connection.getresponse()
        created = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 201
    assert response.getheader("Content-Type") == "application/json"
    assert (created["metadata"]["name"], created["data"]) == ("counter", {"default": "41"})


def test_delete_preconditions_and_dry_run(core: Any, raw: Raw, kube_api: KubeApiEmulator) -> None:
    created = core.create_namespaced_config_map(NS, configmap("counter", {"default": "1"}))
    core.patch_namespaced_config_map("counter", NS, {"data": {"default": "2"}})
    stale = {"preconditions": {"resourceVersion": created.metadata.resource_version}}
    status, _, body = raw("DELETE", f"{CM_PATH}/counter", stale)
    assert (status, body["reason"]) == (409, "Conflict")
    status, _, body = raw("DELETE", f"{CM_PATH}/counter?dryRun=All")
    assert status == 200
    assert kube_api.get_configmap(NS, "counter") is not None
    status, _, body = raw("DELETE", f"{CM_PATH}/counter", {"preconditions": {"uid": created.metadata.uid}})
    assert status == 200
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "counter", "kind": "configmaps", "uid": created.metadata.uid},
    }
    assert kube_api.get_configmap(NS, "counter") is None


def test_watch_streams_adds_changes_and_deletes(core: Any) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version

    def writer() -> None:
        core.create_namespaced_config_map(NS, configmap("watched", {"a": "1"}))
        core.patch_namespaced_config_map("watched", NS, {"data": {"a": "2"}})
        core.delete_namespaced_config_map("watched", NS)

    thread = threading.Thread(target=writer)
    watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
    seen = []
    thread.start()
    for event in watcher.stream(
        core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].data))
        if len(seen) == 3:
            watcher.stop()
    thread.join()
    assert seen == [("ADDED", {"a": "1"}), ("MODIFIED", {"a": "2"}), ("DELETED", {"a": "2"})]


def test_wrong_credentials_are_refused_and_anonymous_requests_pass(raw: Raw) -> None:
    status, _, body = raw("GET", CM_PATH, headers={"Authorization": "Bearer wrong"})
    assert (status, body["reason"]) == (401, "Unauthorized")
    # kubectl (client-go) sends no token over plain http, so the emulator serves anonymous requests
    status, _, _ = raw("GET", CM_PATH)
    assert status == 200


def test_keep_alive_connection_serves_many_requests_without_nagle(raw: Raw) -> None:
    # Nagle + delayed ACK would stall every keep-alive answer by ~40 ms and cap a client at ~25
    # requests/s; the handler turns Nagle off. (Speed itself is measured by `make bench`, not here.)
    from kube_emulator.httpserver import _Handler

    assert _Handler.disable_nagle_algorithm is True
    raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    for value in range(200):
        status, _, _ = raw(
            "PATCH", f"{CM_PATH}/counter", {"data": {"default": str(value)}}, "application/merge-patch+json"
        )
        assert status == 200
    assert raw("GET", f"{CM_PATH}/counter")[2]["data"] == {"default": "199"}


def test_concurrent_test_and_set_patches_never_lose_an_increment(kube_api: KubeApiEmulator) -> None:
    setup = Raw(kube_api.port)
    setup("POST", CM_PATH, configmap("counter", {"default": "0"}))
    setup.close()
    successes: list[int] = []

    def increment_until_done(attempts: int) -> None:
        connection = Raw(kube_api.port)
        for _ in range(attempts):
            value = connection("GET", f"{CM_PATH}/counter")[2]["data"]["default"]
            patch = [
                {"op": "test", "path": "/data/default", "value": value},
                {"op": "replace", "path": "/data/default", "value": str(int(value) + 1)},
            ]
            status = connection("PATCH", f"{CM_PATH}/counter", patch, "application/json-patch+json")[0]
            assert status in (200, 422)
            successes.append(status == 200)
        connection.close()

    threads = [threading.Thread(target=increment_until_done, args=(50,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = kube_api.get_configmap(NS, "counter")
    assert final is not None
    assert int(final["data"]["default"]) == sum(successes) > 0
    assert kube_api.stats()["responses"].get("422", 0) == len(successes) - sum(successes)


# --- the shapes of a real server --------------------------------------------------------------


def _provoke(raw: Raw, api: KubeApiEmulator, case: str) -> tuple[int, http.client.HTTPMessage, Any]:
    if case == "notfound":
        return raw("GET", f"{CM_PATH}/counter")
    raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    if case == "alreadyexists":
        return raw("POST", CM_PATH, configmap("counter", {"default": "0"}))
    if case == "conflict":
        stale = raw("GET", f"{CM_PATH}/counter")[2]
        raw("PATCH", f"{CM_PATH}/counter", {"data": {"default": "1"}}, "application/merge-patch+json")
        return raw("PUT", f"{CM_PATH}/counter", stale)
    if case == "invalid":
        patch = [{"op": "test", "path": "/data/default", "value": "1"}]
        return raw("PATCH", f"{CM_PATH}/counter", patch, "application/json-patch+json")
    api.set_faults(Faults(too_many_requests=1.0, retry_after=1))
    return raw("PUT", f"{CM_PATH}/counter", configmap("counter", {"default": "2"}))


@needs_shared
@pytest.mark.parametrize(
    ("case", "shape"),
    [
        ("notfound", "status-404-notfound.json"),
        ("alreadyexists", "status-409-alreadyexists.json"),
        ("conflict", "status-409-conflict.json"),
        ("invalid", "status-422-invalid.json"),
        ("toomanyrequests", "status-429-toomanyrequests.json"),
    ],
)
def test_status_bodies_match_the_real_server(
    raw: Raw, kube_api: KubeApiEmulator, case: str, shape: str
) -> None:
    expected = shared(shape)
    status, headers, body = _provoke(raw, kube_api, case)
    assert status == expected["code"]
    assert body == expected
    assert list(body) == list(expected), "same key order as the Go struct"
    if case == "toomanyrequests":
        assert headers["Retry-After"] == "1"


@needs_shared
def test_discovery_matches_the_real_server(raw: Raw, kube_api: KubeApiEmulator) -> None:
    assert raw("GET", "/api/v1")[2] == shared("api__v1.configmaps.json")
    versions = raw("GET", "/api")[2]
    expected = shared("api.json")
    assert (versions["kind"], versions["versions"]) == (expected["kind"], expected["versions"])
    assert versions["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{kube_api.host}:{kube_api.port}"}
    ]
    assert raw("GET", "/apis")[2] == {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
    assert raw("GET", "/version")[2]["gitVersion"].startswith("v1.")


# --- fault injection --------------------------------------------------------------------------


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


# --- kubectl ----------------------------------------------------------------------------------

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def kubectl(kube_kubeconfig: Path, tmp_path: Path) -> Kubectl:
    assert KUBECTL is not None

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            KUBECTL,
            "--kubeconfig",
            str(kube_kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert (result.returncode == 0) == ok, (
            f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    return run


@needs_kubectl
def test_kubectl_creates_gets_and_lists_across_namespaces(kubectl: Kubectl) -> None:
    # `create configmap` sends a protobuf body, like every typed client-go client
    assert (
        kubectl("create", "configmap", "counter", "--from-literal=a=b").stdout.strip()
        == "configmap/counter created"
    )
    document = yaml.safe_load(kubectl("get", "configmap", "counter", "-o", "yaml").stdout)
    assert document["data"] == {"a": "b"}
    assert document["metadata"]["resourceVersion"]
    kubectl("-n", "team-a", "create", "configmap", "other", "--from-literal=x=y", "--from-literal=z=w")
    lines = [line.split() for line in kubectl("get", "configmaps", "-A").stdout.splitlines()]
    assert lines[0] == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [line[:3] for line in lines[1:]] == [["default", "counter", "1"], ["team-a", "other", "2"]]


@needs_kubectl
def test_kubectl_create_from_file_then_a_stale_replace_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "counter.yaml"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "0"})), encoding="utf-8")
    kubectl("create", "-f", str(manifest))
    stale = tmp_path / "stale.yaml"
    stale.write_text(kubectl("get", "configmap", "counter", "-o", "yaml").stdout, encoding="utf-8")
    kubectl("patch", "configmap", "counter", "--type", "merge", "-p", '{"data":{"default":"1"}}')
    refused = kubectl("replace", "-f", str(stale), ok=False)
    assert "Error from server (Conflict)" in refused.stderr
    assert CONFLICT_TEXT in refused.stderr
    kubectl("replace", "-f", str(manifest))  # no resourceVersion: unconditional
    assert kubectl("get", "configmap", "counter", "-o", "jsonpath={.data.default}").stdout == "0"


@needs_kubectl
def test_kubectl_patches_merge_and_json_with_test(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "counter", "--from-literal=default=1")
    kubectl("patch", "configmap", "counter", "--type", "merge", "-p", '{"data":{"default":"2","b":"x"}}')
    failing = json.dumps(
        [
            {"op": "test", "path": "/data/default", "value": "1"},
            {"op": "replace", "path": "/data/default", "value": "3"},
        ]
    )
    refused = kubectl("patch", "configmap", "counter", "--type", "json", "-p", failing, ok=False)
    assert "testing value /data/default failed: test failed" in refused.stderr
    passing = failing.replace('"value": "1"', '"value": "2"')
    kubectl("patch", "configmap", "counter", "--type", "json", "-p", passing)
    data = json.loads(kubectl("get", "configmap", "counter", "-o", "jsonpath={.data}").stdout)
    assert data == {"default": "3", "b": "x"}


@needs_kubectl
def test_kubectl_deletes(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "counter", "--from-literal=a=b")
    assert kubectl("delete", "configmap", "counter").stdout.strip() == 'configmap "counter" deleted'
    missing = kubectl("get", "configmap", "counter", ok=False)
    assert 'Error from server (NotFound): configmaps "counter" not found' in missing.stderr


@needs_kubectl
def test_kubectl_apply_works_and_server_side_apply_is_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "counter.yaml"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "0"})), encoding="utf-8")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/counter created"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "1"})), encoding="utf-8")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/counter configured"
    refused = kubectl("apply", "--server-side", "-f", str(manifest), ok=False)
    assert "Server-side apply not available" in refused.stderr


# --- the command line -------------------------------------------------------------------------


def test_cli_writes_a_kubeconfig_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig_path = tmp_path / "kubeconfig"
    command = [sys.executable, "-m", "kube_emulator", "--port", "0", "--kubeconfig", str(kubeconfig_path)]
    command += ["--write-delay", "0.001", "--log-level", "WARNING"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            written = json.loads(kubeconfig_path.read_text(encoding="utf-8"))
            assert written["clusters"][0]["cluster"]["server"] == url
            with urllib.request.urlopen(f"{url}/version", timeout=5) as response:
                assert json.loads(response.read())["gitVersion"].startswith("v1.")
            api_client = config.new_client_from_config(config_file=str(kubeconfig_path))  # type: ignore[no-untyped-call]
            try:
                core: Any = client.CoreV1Api(api_client)
                core.create_namespaced_config_map(NS, configmap("counter", {}))
            finally:
                api_client.close()
            stats = EmulatorAdminClient(url).stats()
            assert (stats["writes"], stats["write_delay"]) == (1, 0.001)
        finally:
            process.send_signal(signal.SIGTERM)  # only the process this test started
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_a_stopped_emulator_refuses_connections_and_restarts_with_its_data(
    raw: Raw, kube_api: KubeApiEmulator
) -> None:
    raw("POST", CM_PATH, configmap("counter", {"default": "1"}))
    raw.close()
    port = kube_api.port
    kube_api.stop()
    with pytest.raises(ConnectionRefusedError):
        Raw(port)("GET", f"{CM_PATH}/counter")
    kube_api.start()
    assert kube_api.port == port
    again = Raw(port)
    try:
        assert again("GET", f"{CM_PATH}/counter")[2]["data"] == {"default": "1"}
    finally:
        again.close()
