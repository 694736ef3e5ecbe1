"""The emulator's `Status` bodies and discovery documents against those a real server gave
(the shared `kube-api` folder)."""

from __future__ import annotations

import http.client
from typing import Any

import pytest
from kube_helpers import (
    CM_PATH,
    Raw,
    configmap,
    needs_shared,
    shared,
)

from kube_emulator import Faults, KubeApiEmulator

pytestmark = pytest.mark.integration


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
