"""Discovery and OpenAPI documents: just enough for kubectl and the Python client to find ConfigMaps.

The `APIResourceList` entries are copied from a real server's discovery output. The OpenAPI v3
document is cut down to the PATCH operations, because that is what kubectl reads from it: it
checks that the server takes `fieldValidation` before it leaves schema validation to the server
(otherwise it would need the full OpenAPI v2 schema to validate on the client side).
"""

from __future__ import annotations

from typing import Any, Final

from kube_emulator.statuses import Json

SERVER_VERSION: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_CONFIGMAPS: Final = {
    "kind": "ConfigMap",
    "name": "configmaps",
    "namespaced": True,
    "shortNames": ["cm"],
    "singularName": "configmap",
    "storageVersionHash": "qFsyl6wFWjQ=",
    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
}
_NAMESPACES: Final = {
    "kind": "Namespace",
    "name": "namespaces",
    "namespaced": False,
    "shortNames": ["ns"],
    "singularName": "namespace",
    "storageVersionHash": "Q3oi5N2YM8M=",
    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
}

CORE_V1_RESOURCES: Final = {
    "groupVersion": "v1",
    "kind": "APIResourceList",
    "resources": [_CONFIGMAPS, _NAMESPACES],
}

API_GROUPS: Final = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}

_OPENAPI_V3_HASH: Final = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
OPENAPI_V3_ROOT: Final = {
    "paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={_OPENAPI_V3_HASH}"}}
}


def core_api_versions(server_address: str) -> Json:
    """`GET /api`; the address is where clients outside the cluster network reach this server."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _query(name: str) -> Json:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _patch_operation(kind: str, operation_id: str) -> Json:
    return {
        "operationId": operation_id,
        "parameters": [_query(name) for name in ("dryRun", "fieldManager", "fieldValidation", "force")],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": "", "kind": kind, "version": "v1"},
    }


def _path_parameter(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}


OPENAPI_V3_CORE_V1: Final[dict[str, Any]] = {
    "openapi": "3.0.0",
    "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
    "paths": {
        "/api/v1/namespaces/{namespace}/configmaps/{name}": {
            "patch": _patch_operation("ConfigMap", "patchCoreV1NamespacedConfigMap"),
            "parameters": [_path_parameter("name"), _path_parameter("namespace"), _query("pretty")],
        },
        "/api/v1/namespaces/{name}": {
            "patch": _patch_operation("Namespace", "patchCoreV1Namespace"),
            "parameters": [_path_parameter("name"), _query("pretty")],
        },
    },
    "components": {"schemas": {}},
}
