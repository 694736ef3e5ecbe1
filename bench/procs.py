"""Processes the harness starts: CPU pinning, start and stop by PID, readiness, RSS and CPU time."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPUs each side gets. The server under test has its core(s) to itself; the load
    generator and the stores behind the server (redis-server, the Kubernetes API emulator) share
    the other(s), as if they were other machines. Empty strings mean: not pinned."""

    server: str
    load: str
    stores: str
    available: tuple[int, ...]
    pinned: bool
    note: str

    def server_for(self, workers: int) -> tuple[str, str]:
        """The CPUs for a server with `workers` processes, and a note when they must share."""
        if not self.pinned:
            return "", ""
        server_cpus = [int(c) for c in self.server.split(",")]
        load_cpus = {int(c) for c in self.load.split(",")}
        spare = [c for c in self.available if c not in load_cpus]
        if workers <= len(server_cpus):
            return self.server, ""
        if workers <= len(spare):
            return ",".join(str(c) for c in spare[:workers]), ""
        return self.server, (
            f"{workers} workers share CPU {self.server}: this machine has {len(self.available)} CPUs"
            f" and {self.load} is the load generator's"
        )


def plan_cpus(server: str | None, load: str | None, *, pin: bool) -> CpuPlan:
    available = tuple(sorted(os.sched_getaffinity(0)))
    if not pin:
        return CpuPlan("", "", "", available, pinned=False, note="not pinned (--no-pin)")
    if shutil.which("taskset") is None:
        return CpuPlan("", "", "", available, pinned=False, note="not pinned: taskset is not installed")
    if len(available) < 2 and (server is None or load is None):  # noqa: PLR2004 - two sides
        return CpuPlan("", "", "", available, pinned=False, note="not pinned: only one CPU is available")
    server_cpus = server or str(available[0])
    load_cpus = load or ",".join(str(c) for c in available[1:] if str(c) not in server_cpus.split(","))
    for cpus in (server_cpus, load_cpus):
        if not _taskset_works(cpus):
            return CpuPlan("", "", "", available, pinned=False, note=f"not pinned: taskset -c {cpus} failed")
    return CpuPlan(
        server_cpus,
        load_cpus,
        load_cpus,
        available,
        pinned=True,
        note=f"server on CPU {server_cpus}; load generator and stores on CPU {load_cpus}",
    )


def _taskset_works(cpus: str) -> bool:
    taskset = shutil.which("taskset")
    true = shutil.which("true")
    if taskset is None or true is None:
        return False
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [taskset, "-c", cpus, true], check=False, capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def pinned(argv: Sequence[str], cpus: str) -> list[str]:
    """`argv` run on `cpus` (taskset execs the program: the PID stays the program's)."""
    taskset = shutil.which("taskset")
    if not cpus or taskset is None:
        return list(argv)
    return [taskset, "-c", cpus, *argv]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own session (a Ctrl-C reaches the harness, which stops it by PID)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv built by the harness, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def stop(
    process: subprocess.Popen[bytes], *, grace: float = 15.0, how: signal.Signals = signal.SIGTERM
) -> None:
    """SIGTERM (or `how`) to the PID we started (uvicorn's supervisor then stops its workers),
    SIGKILL if it does not end within `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(how)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def running(
    process: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        stop(process, how=how)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, *, timeout: float = 30.0, status: int = 200
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartError(f"exited with status {process.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == status:
                return
        time.sleep(0.1)
    raise StartError(f"{url} did not answer {status} within {timeout:.0f}s:\n{tail(log_path)}")


class StartError(RuntimeError):
    """A process the harness started did not come up; the message ends with its log."""


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(pid: int, workers: int, *, spawned: bool = False) -> list[int]:
    """The processes that serve requests: the server itself with one uvicorn worker, else the
    worker children (not multiprocessing's resource tracker). `spawned`: the server serves from
    children even with one worker (granian); the server itself if it has none."""
    if workers <= 1 and not spawned:
        return [pid]
    found = [c for c in children(pid) if "resource_tracker" not in cmdline(c)]
    return found if found or workers > 1 else [pid]


def maps_mention(pids: Sequence[int], name: str) -> bool:
    """Whether one of the processes has a file mapped whose path contains `name` (a library loaded)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if name in Path(f"/proc/{pid}/maps").read_text(errors="replace"):
                return True
    return False


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes, from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def machine_busy(seconds: float = 1.0) -> float:
    """Share (0..1) of all CPUs busy over `seconds`: other work on the machine skews a benchmark."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values), idle

    total_a, idle_a = sample()
    time.sleep(seconds)
    total_b, idle_b = sample()
    total = total_b - total_a
    return 0.0 if total <= 0 else 1.0 - (idle_b - idle_a) / total
