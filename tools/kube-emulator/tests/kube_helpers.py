"""Helpers of the emulator's tests: plain HTTP to it, ConfigMap documents, the real server's
recorded shapes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

# Shapes recorded from a real API server: $KUBE_API_SHAPES, else shared/kube-api beside the
# repository (this file is <repository>/tools/kube-emulator/tests/kube_helpers.py).
BESIDE_THE_REPOSITORY = Path(__file__).resolve().parents[4] / "shared" / "kube-api"
SHARED = Path(os.environ.get("KUBE_API_SHAPES") or BESIDE_THE_REPOSITORY)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared Kubernetes API shapes at {SHARED}")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
CONFLICT_TEXT = "the object has been modified; please apply your changes to the latest version and try again"
NS = "default"
CM_PATH = "/api/v1/namespaces/default/configmaps"


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


def api_error(call: Callable[[], Any]) -> tuple[ApiException, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value, json.loads(caught.value.body or "{}")


def shared(name: str) -> Any:
    return json.loads((SHARED / name).read_text(encoding="utf-8"))


Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]  # the `kubectl` fixture: run it, check its exit
