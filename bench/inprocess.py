"""In-process timing of `POST /counter` through the ASGI app: no server, no socket, no wrk.

Why: on a shared 2-core machine a wrk run of a few percent is noise; the HTTP layer's own cost
per request is not. This drives N requests, `concurrency` at a time, through `create_app()`'s
ASGI callable with ready-made scopes and prints the microseconds per request. With `--baseline
DIR` it runs this checkout and DIR's (`DIR/src` first on PYTHONPATH, as `--baseline` of the
harness does) in child processes, alternating, and prints the medians side by side; with
`--profile FILE` it writes a cProfile of one run instead.

With `--instructions` each child runs under valgrind's callgrind, which counts the instructions
the process executes instead of timing it: the same count for the same code whatever else the
machine is doing (one core or two, another build next door), so small differences show on a busy
shared machine where timings cannot. Each side runs twice, with `--requests N` and with 3N; the
difference, divided by the requests it adds, is the instructions per request, start-up and
warm-up cancelled out. About 50 times slower than a timed run: use a few thousand requests.
Redis's own work runs in redis-server, outside the count (as it runs on the other core in
`make bench`).

    .venv/bin/python -m bench.inprocess --store memory --requests 20000 --rounds 5
    .venv/bin/python -m bench.inprocess --store redis --baseline /tmp/counter-baseline
    .venv/bin/python -m bench.inprocess --store memory --profile /tmp/inc.prof
    .venv/bin/python -m bench.inprocess --store redis --instructions --requests 2048 \
        --baseline /tmp/counter-baseline

`--store redis` starts its own redis-server on a free port and stops it (by PID) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procs

_HERE = Path(__file__).resolve().parent.parent


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", b"0"), (b"user-agent", b"bench")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def _drive(app: Any, path: str, requests: int, concurrency: int) -> float:
    """Seconds for `requests` POSTs, `concurrency` in flight; every answer must be a 200."""
    request_message = {"type": "http.request", "body": b"", "more_body": False}
    failures = 0

    async def receive() -> dict[str, Any]:
        return request_message

    async def one_client(count: int) -> None:
        nonlocal failures
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        for _ in range(count):
            await app(_scope(path), receive, send)
            failures += status != 200  # noqa: PLR2004

    share = requests // concurrency
    started = time.perf_counter()
    await asyncio.gather(*(one_client(share) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        msg = f"{failures} answers were not 200"
        raise SystemExit(msg)
    return elapsed / (share * concurrency)


async def _lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise SystemExit(f"start-up failed: {started}")
    return inbox, task


async def _child(args: argparse.Namespace) -> None:
    from entrypoints.http.app import create_app
    from entrypoints.logs import configure_logging
    from entrypoints.settings import Settings

    configure_logging("info", "text")
    settings = Settings.from_env()
    app = create_app(settings=settings, tune_gc=True)
    inbox, task = await _lifespan(app)
    await _drive(app, args.path, args.requests // 4, args.concurrency)  # warm-up
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        seconds = await _drive(app, args.path, args.requests, args.concurrency)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(json.dumps([seconds * 1e6]))  # noqa: T201
    else:
        runs = [await _drive(app, args.path, args.requests, args.concurrency) * 1e6 for _ in range(args.runs)]
        print(json.dumps(runs))  # noqa: T201
    await inbox.put({"type": "lifespan.shutdown"})
    await task


@contextlib.contextmanager
def _redis(store: str) -> Iterator[dict[str, str]]:
    if store != "redis":
        yield {"COUNTER_BACKEND": store}
        return
    port = procs.free_port()
    server = subprocess.Popen(  # noqa: S603
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],  # noqa: S607
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        yield {"COUNTER_BACKEND": "redis", "COUNTER_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    finally:
        server.terminate()
        server.wait(5)


def _run_child(src: Path, args: argparse.Namespace, env: dict[str, str], log: Path) -> list[float]:
    child_env = {**os.environ, **env, "PYTHONPATH": f"{src}:{_HERE}"}
    child_env["COUNTER_ACCESS_LOG"] = "true" if args.access_log else "false"
    if args.instructions:
        return [_instructions_per_request(child_env, args, log)]
    command = [sys.executable, "-m", "bench.inprocess", "--child", *args.child_argv]
    with log.open("a") as stderr:
        out = subprocess.run(  # noqa: S603
            command, env=child_env, stdout=subprocess.PIPE, stderr=stderr, check=True, text=True
        )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _driven(requests: int, concurrency: int) -> int:
    """Requests one child drives with `--requests requests --runs 1`: its warm-up and its run."""
    return (requests // 4 // concurrency + requests // concurrency) * concurrency


def _instructions_per_request(env: dict[str, str], args: argparse.Namespace, log: Path) -> float:
    counts: list[int] = []
    sizes = [args.requests, 3 * args.requests]
    for requests in sizes:
        with tempfile.TemporaryDirectory() as work:
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={work}/callgrind.out",
                sys.executable,
                "-m",
                "bench.inprocess",
                "--child",
                *["--path", args.path, "--requests", str(requests), "--concurrency", str(args.concurrency)],
                *["--runs", "1"],
            ]
            # A fixed hash seed: the same dict and set layouts in both runs.
            child_env = {**env, "PYTHONHASHSEED": "0"}
            done = subprocess.run(command, env=child_env, capture_output=True, text=True, check=False)  # noqa: S603
            with log.open("a") as stderr:
                stderr.write(done.stderr)
            found = re.search(r"Collected : (\d+)", done.stderr)
            if done.returncode or found is None:
                raise subprocess.CalledProcessError(done.returncode, command)
            counts.append(int(found.group(1)))
    added = _driven(sizes[1], args.concurrency) - _driven(sizes[0], args.concurrency)
    return (counts[1] - counts[0]) / added


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="memory", choices=["memory", "redis", "sqlite"])
    parser.add_argument("--path", default="/counter")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per child process")
    parser.add_argument("--rounds", type=int, default=5, help="child processes per checkout, alternating")
    parser.add_argument("--access-log", action="store_true", help="the defaults: access log on")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier commit")
    parser.add_argument("--profile", help="write a cProfile of one run here")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request under callgrind instead"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args))
        return
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install -y valgrind)")
    if args.instructions and args.profile:
        raise SystemExit("--instructions and --profile do not go together")
    args.child_argv = ["--path", args.path, "--requests", str(args.requests)]
    args.child_argv += ["--concurrency", str(args.concurrency), "--runs", str(args.runs)]
    args.child_argv += ["--profile", args.profile] if args.profile else []
    sides = {"this": _HERE / "src"} | ({"baseline": args.baseline.resolve() / "src"} if args.baseline else {})
    results: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as work, _redis(args.store) as store_env:
        env = {**store_env, "COUNTER_LOG_LEVEL": "info"}
        log = Path(work) / "stderr.log"
        try:
            for _ in range(1 if args.profile or args.instructions else args.rounds):
                for name, src in sides.items():
                    # A file per side: a checkout of another schema version may refuse this one's.
                    side_env = {**env, "COUNTER_SQLITE_PATH": f"{work}/{name}.db"}
                    results[name] += _run_child(src, args, side_env, log)
        except subprocess.CalledProcessError:
            sys.stderr.write(procs.tail(log, 40))
            raise
    _report(results, args)


def _report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    if args.instructions:
        for name, runs in results.items():
            print(f"{name:9s} {statistics.median(runs):9.0f} instructions/request  runs: {runs}")  # noqa: T201
        if args.baseline:
            change = statistics.median(results["this"]) / statistics.median(results["baseline"]) - 1
            print(f"this against the baseline: {change:+.1%} instructions per request")  # noqa: T201
        return
    for name, runs in results.items():
        # The fastest run is the one the rest of the machine disturbed least.
        line = f"{name:9s} median {statistics.median(runs):6.2f}  min {min(runs):6.2f} us/request  runs: "
        print(line + " ".join(f"{run:.2f}" for run in runs))  # noqa: T201
    if args.baseline:
        gain = statistics.median(results["baseline"]) - statistics.median(results["this"])
        gain_min = min(results["baseline"]) - min(results["this"])
        print(f"gain: {gain:.2f} us/request (medians), {gain_min:.2f} (minimums)")  # noqa: T201


if __name__ == "__main__":
    main()
