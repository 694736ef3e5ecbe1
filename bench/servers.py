"""The servers under test and the stores behind them, each started on 127.0.0.1 by the harness
on a free port and stopped by its PID when the block ends."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import procs

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(slots=True)
class Server:
    """A running HTTP server: where it answers and which processes serve."""

    url: str
    process: subprocess.Popen[bytes]
    workers: int
    cpus: str
    log_path: Path

    def worker_pids(self) -> list[int]:
        return procs.worker_pids(self.process.pid, self.workers)

    def all_pids(self) -> list[int]:
        return [self.process.pid, *procs.children(self.process.pid)]

    def read_count(self) -> int:
        response = httpx.get(f"{self.url}/counter", timeout=10.0)
        response.raise_for_status()
        count = response.json()["count"]
        if not isinstance(count, int):
            raise TypeError(f"GET /counter answered {response.text!r}")
        return count


@dataclass(slots=True)
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]


@dataclass(slots=True)
class KubeEmulator:
    url: str
    kubeconfig: Path
    process: subprocess.Popen[bytes]
    write_delay: float
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def stats(self) -> dict[str, Any]:
        response = self._client.get(f"{self.url}/_emulator/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The harness's environment without any COUNTER_* or KUBECONFIG of the caller's shell."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COUNTER_", "PEER_")) and k != "KUBECONFIG"
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def redis_server(cpus: str, workdir: Path) -> Iterator[RedisServer]:
    """Our own redis-server on a free port, nothing persisted (never the machine's own Redis)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise procs.StartError("redis-server is not installed (apt-get install -y redis-server)")
    port = procs.free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]
    log_path = workdir / "redis-server.log"
    process = procs.start(procs.pinned(argv, cpus), log_path=log_path)
    with procs.running(process):
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=1.0)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise procs.StartError(f"redis-server exited:\n{procs.tail(log_path)}")
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise procs.StartError(f"redis-server did not answer:\n{procs.tail(log_path)}") from None
                time.sleep(0.05)
        client.close()
        yield RedisServer(url=url, process=process)


@contextlib.contextmanager
def kube_emulator(cpus: str, workdir: Path, write_delay: float) -> Iterator[KubeEmulator]:
    """The emulated Kubernetes API server (src/kube_emulator) with a write delay per API write,
    as etcd's fsync costs a real cluster."""
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig.yaml"
    kubeconfig.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "kube_emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--write-delay",
        str(write_delay),
        "--log-level",
        "WARNING",
    ]
    log_path = workdir / "kube-emulator.log"
    process = procs.start(procs.pinned(argv, cpus), log_path=log_path, env=clean_env({}))
    with procs.running(process):
        url = _wait_kubeconfig(kubeconfig, process, log_path)
        procs.wait_http(f"{url}/_emulator/stats", process, log_path, timeout=15)
        emulator = KubeEmulator(url=url, kubeconfig=kubeconfig, process=process, write_delay=write_delay)
        try:
            yield emulator
        finally:
            emulator._client.close()  # noqa: SLF001 - our own dataclass


def _wait_kubeconfig(path: Path, process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise procs.StartError(f"the kube emulator exited:\n{procs.tail(log_path)}")
        with contextlib.suppress(OSError):
            match = re.search(r"server['\"]?\s*:\s*['\"]?(https?://[^\s'\"]+)", path.read_text())
            if match:
                return match.group(1).rstrip("/")
        time.sleep(0.05)
    raise procs.StartError(f"the kube emulator wrote no kubeconfig at {path}:\n{procs.tail(log_path)}")


@contextlib.contextmanager
def counter_server(
    env: Mapping[str, str], *, workers: int, cpus: str, log_path: Path, profile: Path | None = None
) -> Iterator[Server]:
    """`counter serve`, as a user runs it, configured by COUNTER_* variables only. With `profile`,
    it runs under pyinstrument, which saves a session there when the server stops."""
    port = procs.free_port()
    full_env = clean_env(
        {
            "COUNTER_HOST": "127.0.0.1",
            "COUNTER_PORT": str(port),
            "COUNTER_WORKERS": str(workers),
            "COUNTER_ACCESS_LOG": "false",
            "COUNTER_LOG_LEVEL": "warning",
            **env,
        }
    )
    script = BIN / "counter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]
    how = signal.SIGTERM
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(profile)]
        command += ["-m", "entrypoints.cli"]
        how = signal.SIGINT  # uvicorn re-raises the signal it stopped on: SIGINT lets pyinstrument save
    process = procs.start(procs.pinned([*command, "serve"], cpus), log_path=log_path, env=full_env)
    with procs.running(process, how):
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{url}/health/ready", process, log_path, timeout=60)
        _wait_workers(process.pid, workers)
        yield Server(url=url, process=process, workers=workers, cpus=cpus, log_path=log_path)


@contextlib.contextmanager
def peer_server(redis_url: str, *, cpus: str, log_path: Path) -> Iterator[Server]:
    """The FastAPI + redis-py peer under uvicorn with uvloop and httptools, one worker."""
    port = procs.free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.peers.fastapi_redis_app:app",
        "--app-dir",
        str(REPO_ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = clean_env({"PEER_REDIS_URL": redis_url})
    process = procs.start(procs.pinned(argv, cpus), log_path=log_path, env=env, cwd=REPO_ROOT)
    with procs.running(process):
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{url}/counter", process, log_path, timeout=60)
        yield Server(url=url, process=process, workers=1, cpus=cpus, log_path=log_path)


def _wait_workers(pid: int, workers: int) -> None:
    if workers <= 1:
        return
    deadline = time.monotonic() + 30
    while len(procs.worker_pids(pid, workers)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)


def render_profile(session: Path) -> list[Path]:
    """An HTML report (the call tree) and a text one (functions by their own time, library code
    included) of a pyinstrument session; the session itself (~100 MB) is removed when both exist."""
    rendered = []
    flat = ["-p", "flat=true", "-p", "show_all=true"]
    for renderer, suffix, extra in (("html", ".html", []), ("text", ".txt", flat)):
        target = session.with_suffix(suffix)
        argv = [
            sys.executable,
            "-m",
            "pyinstrument",
            "--load",
            str(session),
            "-r",
            renderer,
            "-o",
            str(target),
        ]
        completed = subprocess.run(  # noqa: S603 - argv built here, no shell
            [*argv, *extra], check=False, capture_output=True, timeout=300
        )
        if completed.returncode == 0 and target.exists():
            rendered.append(target)
    if len(rendered) == 2:  # noqa: PLR2004 - both reports
        session.unlink(missing_ok=True)
    return rendered
