"""Run `counter serve` as a real subprocess on a free port, the way a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def counter_command() -> list[str]:
    script = Path(sys.executable).parent / "counter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]


@contextmanager
def running_server(
    env: dict[str, str], log_path: Path, *, workers: int = 1, ready_timeout: float = 30.0
) -> Iterator[Server]:
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COUNTER_")},
        "COUNTER_HOST": "127.0.0.1",
        "COUNTER_PORT": str(port),
        "COUNTER_WORKERS": str(workers),
        "COUNTER_ACCESS_LOG": "false",
        **env,
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen([*counter_command(), "serve"], env=full_env, stdout=log, stderr=log)
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(process)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            msg = f"counter serve exited with {server.process.returncode}:\n{server.log()}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    msg = f"counter serve did not become ready in {timeout}s:\n{server.log()}"
    raise RuntimeError(msg)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the server we started, by its PID: SIGTERM for a graceful stop, SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def store_env(request: pytest.FixtureRequest, tmp_path: Path, backend: str, name: str) -> dict[str, str]:
    """The settings of a server on `backend`: a SQLite file in `tmp_path`, or the test Redis
    (the `redis_url` fixture) under a prefix of its own; `name` names the file and the prefix."""
    if backend == "sqlite":
        return {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / f"{name}.db")}
    redis_url: str = request.getfixturevalue("redis_url")
    return {
        "COUNTER_BACKEND": "redis",
        "COUNTER_REDIS_URL": redis_url,
        "COUNTER_REDIS_PREFIX": f"{name}-{tmp_path.name}:",
    }
