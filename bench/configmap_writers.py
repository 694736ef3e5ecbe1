"""Several writers on one ConfigMap: 1 against N `counter serve` processes, each its own replica.

    python -m bench.configmap_writers                      # 1 and 3 writers, budget 10 and none
    python -m bench.configmap_writers --processes 1,2,3 --requests 20000 --concurrency 96
    python -m bench.configmap_writers --src /tmp/counter-baseline/src   # an earlier commit's code

One emulated Kubernetes API (tools/kube-emulator, `--write-delay` per write as etcd's fsync costs)
for the whole run, and for each case a fresh ConfigMap, N `counter serve` processes on ports of
their own (as N replicas behind a Service; uvicorn's own workers share one socket and the kernel
may hand every connection to one of them) and one `hey` per process, the requests and the clients
split evenly. A warm-up first (the ConfigMap is created, every writer has written), then the
measured requests; bounded by their count. Printed per case: requests sent, 2xx, 503, other
answers, what the counter rose by, the API's write requests, those it applied and those it
refused (lost compare-and-swap races), 2xx per second and the slowest answer. It fails (status 1)
when a count is not exact. Needs `hey` (Debian: apt-get install hey).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.servers import KubeEmulator, Server, counter_server, kube_emulator

_WRITE_VERBS = ("create", "patch", "update")


@dataclass(frozen=True, slots=True)
class Case:
    processes: int
    budget: str  # COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND; "default" leaves the service's own


@dataclass(slots=True)
class Result:
    processes: int
    budget: str
    sent: int
    ok: int
    unavailable: int
    other: int
    rose_by: int
    api_writes: int
    applied: int
    refused: int
    ok_per_second: float
    slowest_seconds: float

    @property
    def exact(self) -> bool:
        return self.rose_by == self.ok


@dataclass(slots=True)
class HeyRun:
    statuses: dict[int, int]
    errors: int
    seconds: float
    slowest: float


def parse_hey(text: str) -> HeyRun:
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    _, _, failures = text.partition("Error distribution:")
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", failures, flags=re.MULTILINE))
    total = re.search(r"Total:\s+([\d.]+) secs", text)
    slowest = re.search(r"Slowest:\s+([\d.]+) secs", text)
    return HeyRun(
        statuses, errors, float(total.group(1)) if total else 0.0, float(slowest.group(1)) if slowest else 0.0
    )


def hey_all(servers: list[Server], requests: int, concurrency: int) -> list[HeyRun]:
    """One `hey` per server at once, `requests` and `concurrency` split evenly between them."""
    hey = shutil.which("hey")
    assert hey is not None
    clients = max(1, concurrency // len(servers))
    each = max(clients, requests // len(servers) // clients * clients)  # hey sends a multiple of -c
    runs = [
        subprocess.Popen(  # noqa: S603 - fixed argv
            [hey, "-n", str(each), "-c", str(clients), "-m", "POST", f"{s.url}/counter"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in servers
    ]
    return [parse_hey(run.communicate(timeout=600)[0]) for run in runs]


def api_counts(emulator: KubeEmulator) -> tuple[int, int]:
    stats = emulator.stats()
    return sum(stats["requests"].get(v, 0) for v in _WRITE_VERBS), int(stats["writes"])


def run_case(case: Case, emulator: KubeEmulator, args: argparse.Namespace, workdir: Path) -> Result:
    name = f"writers-{case.processes}-{case.budget}-{time.time_ns() % 10**9}"
    env = {
        "COUNTER_BACKEND": "configmap",
        "COUNTER_KUBECONFIG": str(emulator.kubeconfig),
        "COUNTER_CONFIGMAP_NAME": name,
        "COUNTER_CONFIGMAP_NAMESPACE": "default",
    }
    if case.budget != "default":
        env["COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND"] = case.budget
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(counter_server(env, workers=1, cpus="", log_path=workdir / f"{name}-{i}.log"))
            for i in range(case.processes)
        ]
        warm = hey_all(servers, args.warmup, args.concurrency)
        start = servers[0].read_count()
        writes_before, applied_before = api_counts(emulator)
        runs = hey_all(servers, args.requests, args.concurrency)
        writes_after, applied_after = api_counts(emulator)
        rose_by = servers[0].read_count() - start
    if any(w.statuses.get(200, 0) != sum(w.statuses.values()) or w.errors for w in warm):
        sys.stderr.write(f"  warm-up of {name} was not all 2xx: {[asdict(w) for w in warm]}\n")
    statuses: dict[int, int] = {}
    for run in runs:
        for code, n in run.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)  # noqa: PLR2004
    seconds = max(run.seconds for run in runs) or 1.0
    return Result(
        processes=case.processes,
        budget=case.budget,
        sent=sum(statuses.values()) + sum(run.errors for run in runs),
        ok=ok,
        unavailable=statuses.get(503, 0),
        other=sum(statuses.values()) - ok - statuses.get(503, 0) + sum(run.errors for run in runs),
        rose_by=rose_by,
        api_writes=writes_after - writes_before,
        applied=applied_after - applied_before,
        refused=(writes_after - writes_before) - (applied_after - applied_before),
        ok_per_second=ok / seconds,
        slowest_seconds=max(run.slowest for run in runs),
    )


def table(results: list[Result]) -> str:
    head = "writers budget      sent     2xx  503 other  rose by  API writes applied refused    2xx/s slowest"
    lines = [
        f"{r.processes:>7} {r.budget:>6} {r.sent:>9} {r.ok:>7} {r.unavailable:>4} {r.other:>5}"
        f" {r.rose_by:>8} {r.api_writes:>11} {r.applied:>7} {r.refused:>7}"
        f" {r.ok_per_second:>8.0f} {r.slowest_seconds:>6.2f}s{'' if r.exact else '  COUNT NOT EXACT'}"
        for r in results
    ]
    return "\n".join([head, *lines])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", default="1,3", help="writer processes per case, comma-separated")
    parser.add_argument("--budgets", default="default,0", help="write budgets per case ('default': 10)")
    parser.add_argument("--requests", type=int, default=20000, help="measured POSTs per case")
    parser.add_argument("--concurrency", type=int, default=96, help="clients in all, split over the writers")
    parser.add_argument("--warmup", type=int, default=1000, help="POSTs before the measured ones")
    parser.add_argument("--write-delay", type=float, default=0.003, help="seconds per API write")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case, one after the other")
    parser.add_argument("--src", default="", help="run the servers on this src/ (an earlier commit's)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which("hey") is None:
        sys.stderr.write("needs hey on PATH (Debian: apt-get install hey)\n")
        return 2
    cases = [
        Case(int(p), b.strip())
        for b in args.budgets.split(",")
        for p in args.processes.split(",")
        for _ in range(args.repeat)
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="configmap-writers-") as tmp:
        workdir = Path(tmp)
        with kube_emulator("", workdir / "kube", args.write_delay) as emulator:
            for case in cases:
                result = run_case(case, emulator, args, workdir)
                sys.stdout.write(table([result]).splitlines()[1] + "\n")
                sys.stdout.flush()
                results.append(result)
    sys.stdout.write("\n" + table(results) + "\n")
    if args.json:
        doc: dict[str, Any] = {"options": vars(args), "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.exact for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
