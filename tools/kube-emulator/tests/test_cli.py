"""The emulator's command line: a kubeconfig written, served, stopped on SIGTERM, restarted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import CM_PATH, NS, Raw, configmap
from kubernetes import client, config

from kube_emulator import EmulatorAdminClient, KubeApiEmulator

pytestmark = pytest.mark.integration


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
