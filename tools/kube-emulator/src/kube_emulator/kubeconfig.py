"""A kubeconfig that points kubectl and the official client at the emulator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NAME = "kube-emulator"


def kubeconfig(url: str, token: str | None, namespace: str = "default") -> dict[str, Any]:
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": url}}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": namespace}}],
        "current-context": NAME,
        "preferences": {},
    }


def write(path: str | Path, url: str, token: str | None, namespace: str = "default") -> Path:
    """Write it as JSON, which every YAML reader (kubectl, the Python client) also reads.

    The file appears complete or not at all: another process may be polling for it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(kubeconfig(url, token, namespace), indent=2) + "\n", encoding="utf-8")
    partial.chmod(0o600)  # kubectl warns about group- or world-readable kubeconfigs
    partial.replace(target)
    return target
