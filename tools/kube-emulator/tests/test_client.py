"""The emulated Kubernetes API with the official Python client: it must not be able to tell it
from a real API server for ConfigMaps (verbs, concurrency rules, validation, watches)."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import pytest
from kube_helpers import (
    CM_PATH,
    CONFLICT_TEXT,
    NS,
    Raw,
    api_error,
    configmap,
)
from kubernetes import watch

from kube_emulator import KubeApiEmulator

pytestmark = pytest.mark.integration


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
