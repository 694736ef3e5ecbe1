"""The servers under test and the stores behind them, each started on 127.0.0.1 by the harness
on a free port and stopped by its PID when the block ends."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import procs
from bench.peers.bare_asgi import CALL_PREFIX

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
    server: str = "uvicorn"  # granian serves from worker processes, even with one worker
    argv: list[str] = field(default_factory=list)
    call: str = ""  # how the server was called (the ceiling records it)

    def worker_pids(self) -> list[int]:
        return procs.worker_pids(self.process.pid, self.workers, spawned=self.server == "granian")

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


# The packages of the service: with --baseline, each must come from the baseline's src/.
SERVICE_PACKAGES = ("domain", "adapters", "entrypoints", "entrypoints.http")
SERVICE_MODULES = ("entrypoints.cli", "entrypoints.http.app")
_WHERE_SCRIPT = """
import importlib, importlib.util, json, sys
found = {}
for name in filter(None, sys.argv[2].split(",")):
    module = importlib.import_module(name)
    found[name] = [getattr(module, "__file__", None) or "", *list(getattr(module, "__path__", []))]
specs = {}
for name in filter(None, sys.argv[3].split(",")):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    specs[name] = "" if spec is None else (spec.origin or "")
print(sys.argv[1] + json.dumps({"imported": found, "specs": specs}))
"""
_WHERE_PREFIX = "BENCH_WHERE "


@dataclass(frozen=True, slots=True)
class Baseline:
    """A checkout of an earlier commit (a git worktree). Its servers run the same `counter serve`
    of this virtualenv (same interpreter, same dependencies) with the checkout's src/ first on
    PYTHONPATH, which comes before the editable install's path in sys.path."""

    root: Path
    label: str
    describe: str  # `git describe --always --dirty` of the checkout
    imported: dict[str, list[str]]  # module -> its file and package paths, as the servers import them
    specs: dict[str, str]  # module a scenario needs -> where the baseline finds it ('' if nowhere)
    settings: frozenset[str] = frozenset()  # the fields of its Settings (its COUNTER_* variables)

    @property
    def src(self) -> Path:
        return self.root / "src"

    def pythonpath(self, env: Mapping[str, str]) -> str:
        rest = env.get("PYTHONPATH", "")
        return str(self.src) + (os.pathsep + rest if rest else "")

    def missing(self, modules: Sequence[str]) -> list[str]:
        return [m for m in modules if not self.specs.get(m)]


def load_baseline(root: Path, label: str | None, modules: Sequence[str]) -> Baseline:
    """Check that `root` is a checkout of this project and that a server started with its src/ on
    PYTHONPATH imports the service's packages from there (not from the editable install); find
    where it finds `modules` (those the scenarios need)."""
    root = root.expanduser().resolve()
    if not (root / "src" / "entrypoints" / "cli.py").is_file():
        raise ValueError(
            f"--baseline {root}: no src/entrypoints/cli.py there; give a checkout of this project"
            " (git worktree add /tmp/counter-baseline <commit>)"
        )
    env = clean_env({})
    baseline = Baseline(root, "", "", {}, {})
    env["PYTHONPATH"] = baseline.pythonpath(env)
    completed = subprocess.run(  # noqa: S603 - argv built here, no shell
        [
            sys.executable,
            "-c",
            _WHERE_SCRIPT,
            _WHERE_PREFIX,
            ",".join((*SERVICE_PACKAGES, *SERVICE_MODULES)),
            ",".join(sorted(set(modules))),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=BIN,  # where `counter` lives: sys.path[0] as the servers have it
        timeout=120,
    )
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith(_WHERE_PREFIX)), None)
    if completed.returncode != 0 or line is None:
        raise ValueError(
            f"--baseline {root}: its code does not import with this virtualenv:"
            f" {completed.stderr.strip()[-800:]}"
        )
    where = json.loads(line.removeprefix(_WHERE_PREFIX))
    imported: dict[str, list[str]] = where["imported"]
    elsewhere = [
        f"{name} from {path}"
        for name, paths in imported.items()
        for path in paths
        if path and not Path(path).resolve().is_relative_to(baseline.src)
    ]
    if elsewhere:
        raise ValueError(f"--baseline {root}: PYTHONPATH did not win: {'; '.join(elsewhere)}")
    return Baseline(
        root=root,
        label=label or _git(root, "rev-parse", "--short", "HEAD") or root.name,
        describe=_git(root, "describe", "--always", "--dirty"),
        imported=imported,
        specs=where["specs"],
        settings=declared_settings(root / "src"),
    )


def declared_settings(src: Path) -> frozenset[str]:
    """The fields of the service's `Settings` (each one COUNTER_* variable), read from the source
    of `src`: a scenario that needs a setting the code does not have is skipped, not run with a
    variable the service would ignore."""
    path = src / "entrypoints" / "settings.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            return frozenset(
                statement.target.id
                for statement in node.body
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            )
    return frozenset()


def _git(root: Path, *args: str) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, "-C", str(root), *args], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


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
    """The emulated Kubernetes API server (tools/kube-emulator) with a write delay per API write,
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
    env: Mapping[str, str],
    *,
    workers: int,
    cpus: str,
    log_path: Path,
    profile: Path | None = None,
    baseline: Baseline | None = None,
    server: str = "uvicorn",
) -> Iterator[Server]:
    """`counter serve`, as a user runs it, configured by COUNTER_* variables only (`server` says
    which HTTP server COUNTER_SERVER makes it run, for its worker processes). With `profile`,
    it runs under pyinstrument, which saves a session there when the server stops. With
    `baseline`, the same command runs the baseline's code (its src/ first on PYTHONPATH)."""
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
    if baseline is not None:
        full_env["PYTHONPATH"] = baseline.pythonpath(full_env)
    script = BIN / "counter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]
    how = signal.SIGTERM
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(profile)]
        command += ["-m", "entrypoints.cli"]
        how = signal.SIGINT  # uvicorn re-raises the signal it stopped on: SIGINT lets pyinstrument save
    argv = procs.pinned([*command, "serve"], cpus)
    process = procs.start(argv, log_path=log_path, env=full_env)
    with procs.running(process, how):
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{url}/health/ready", process, log_path, timeout=60)
        _wait_workers(process.pid, workers)
        yield Server(
            url=url,
            process=process,
            workers=workers,
            cpus=cpus,
            log_path=log_path,
            server=server,
            argv=argv,
        )


@contextlib.contextmanager
def ceiling_server(server: str, *, cpus: str, log_path: Path) -> Iterator[Server]:
    """bench/peers/bare_asgi.py: `counter serve` itself with the bare app in place of the
    service's, on `server` (uvicorn or granian), 1 worker, access log off; `Server.call` is how
    it called its server (recorded by the launcher)."""
    port = procs.free_port()
    env = clean_env(
        {
            "COUNTER_HOST": "127.0.0.1",
            "COUNTER_PORT": str(port),
            "COUNTER_WORKERS": "1",
            "COUNTER_BACKEND": "memory",  # not opened: the bare app has no store
            "COUNTER_ACCESS_LOG": "false",
            "COUNTER_LOG_LEVEL": "warning",
            **({"COUNTER_SERVER": server} if server != "uvicorn" else {}),
        }
    )
    # granian's workers are new processes that import the bare app by its name.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    argv = procs.pinned([sys.executable, "-m", "bench.peers.bare_asgi"], cpus)
    process = procs.start(argv, log_path=log_path, env=env, cwd=REPO_ROOT)
    with procs.running(process):
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{url}/health/ready", process, log_path, timeout=60)
        called = _server_call(log_path)
        if called.get("server") != server:
            raise procs.StartError(
                f"the bare app was not served by {server}: {called or 'no server call recorded'}"
            )
        yield Server(
            url=url,
            process=process,
            workers=1,
            cpus=cpus,
            log_path=log_path,
            server=server,
            argv=argv,
            call=f"{called['server']}: {called['call']}",
        )


def _server_call(log_path: Path) -> dict[str, str]:
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(CALL_PREFIX):
                found: dict[str, str] = json.loads(line.removeprefix(CALL_PREFIX))
                return found
    return {}


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
