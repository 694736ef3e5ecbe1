"""The load generator: wrk with bench/wrk_counter.lua, bounded in time or in requests."""

from __future__ import annotations

import json
import math
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import procs

SCRIPT = Path(__file__).resolve().parent / "wrk_counter.lua"
THREAD_DONE = "BENCH_THREAD_DONE"
JSON_PREFIX = "BENCH_JSON "
# A request slower than this counts as a wrk timeout (and stays in flight: it is not dropped).
TIMEOUT_SECONDS = 30


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    ok: int  # measured requests answered 2xx
    failed: int  # measured requests answered otherwise
    sent: int  # measured requests sent
    tail: int  # drain requests (GET, change nothing)
    elapsed_s: float
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    load_cpu_s: float
    complete: bool  # every measured request got its answer before wrk stopped

    @property
    def answered(self) -> int:
        return self.ok + self.failed

    @property
    def rps(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.failed + self.socket_errors

    @property
    def load_cpu_share(self) -> float:
        return self.load_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise LoadError("wrk is not installed: apt-get install -y wrk")
    return binary


def run(
    base_url: str,
    *,
    method: str,
    path: str,
    concurrency: int,
    cpus: str,
    seconds: float = 0.0,
    budget: int = 0,
    max_seconds: float | None = None,
    tail_path: str = "/health/live",
) -> LoadResult:
    """One wrk run: `concurrency` connections, until `seconds` have passed or `budget` measured
    requests were sent (whichever first), then until every measured request has its answer."""
    if seconds <= 0 and budget <= 0:
        raise ValueError("give seconds or budget")
    threads = max(1, min(concurrency, len(cpus.split(",")) if cpus else 1))
    per_thread = math.ceil(budget / threads) if budget > 0 else 0
    limit = max_seconds if max_seconds is not None else seconds + 30
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{math.ceil(limit)}s",
        f"--timeout={TIMEOUT_SECONDS}s",
        "-s",
        str(SCRIPT),
        base_url + path,
        "--",
        method,
        path,
        str(per_thread),
        f"{seconds:.3f}",
        tail_path,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
        procs.pinned(argv, cpus),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stderr, done = _await_threads(process, threads)
        stdout, rest = process.communicate(timeout=limit + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stderr += rest
    if process.returncode != 0:
        raise LoadError(f"wrk exited with {process.returncode}: {stderr.strip()[-500:]}")
    line = next((ln for ln in stdout.splitlines() if ln.startswith(JSON_PREFIX)), None)
    if line is None:
        raise LoadError(f"wrk printed no result: {stdout[-500:]} {stderr[-500:]}")
    raw = json.loads(line.removeprefix(JSON_PREFIX))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LoadResult(
        ok=raw["ok"],
        failed=raw["failed"],
        sent=raw["sent"],
        tail=raw["tail"],
        elapsed_s=raw["elapsed_s"],
        socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"],
        timeouts=raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        load_cpu_s=cpu,
        # A GET changes nothing: its answers abandoned in flight at the stop do not matter.
        complete=done >= threads and (method == "GET" or raw["ok"] + raw["failed"] == raw["sent"]),
    )


def _await_threads(process: subprocess.Popen[str], threads: int) -> tuple[str, int]:
    """Read wrk's stderr until every thread says it is done, then SIGINT it: wrk's main thread
    otherwise sleeps for the whole -d before it prints the results."""
    if process.stderr is None:
        raise LoadError("wrk's stderr is not a pipe")
    lines: list[str] = []
    done: set[str] = set()
    for line in process.stderr:
        if line.startswith(THREAD_DONE):
            done.add(line.strip())
            if len(done) >= threads:
                time.sleep(0.01)
                process.send_signal(signal.SIGINT)
                break
        else:
            lines.append(line)
    return "".join(lines), len(done)
