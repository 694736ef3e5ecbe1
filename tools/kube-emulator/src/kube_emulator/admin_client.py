"""Steer an emulator that runs in another process (benchmarks) through its `/_emulator` endpoints."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from kube_emulator.faults import Faults


class EmulatorAdminClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url}")
        self._url = url.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, what: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self._url}/_emulator/{what}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def faults(self) -> Faults:
        return Faults.from_json(self._call("GET", "faults"))

    def set_faults(self, faults: Faults) -> None:
        self._call("POST", "faults", faults.to_json())

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_write_delay(self, seconds: float) -> None:
        self._call("POST", "settings", {"write_delay": seconds})

    def reset(self) -> None:
        self._call("POST", "reset", {})
