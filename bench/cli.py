"""`python -m bench`: run the scenarios, print the table and the targets, save JSON and a plot.

Every option also reads an environment variable (BENCH_DURATION, BENCH_WARMUP, BENCH_SCENARIOS,
...), so that `make bench BENCH_SCENARIOS=health,redis` works without editing the Makefile.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import catalogue, load, procs, report, scenarios, servers, targets
from bench.model import Scenario, ScenarioResult

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"duration": 5.0, "warmup": 2.0, "soak_requests": 100_000}
QUICK = {"duration": 2.0, "warmup": 1.0, "soak_requests": 10_000}
BUSY_WARNING = 0.15


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in {"1", "true", "yes", "on"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the counter service against a bare-ASGI ceiling on the same server and a"
        " FastAPI peer, with the access log off and with the defaults (access log on).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=_flag("BENCH_QUICK"),
        help="a smoke run: 2s runs, 1s warm-up, 10k soak requests [BENCH_QUICK]",
    )
    parser.add_argument(
        "--duration", type=float, default=_env("BENCH_DURATION"), help="seconds per measured run (5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=_env("BENCH_WARMUP"), help="seconds of warm-up per server (2)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=int(_env("BENCH_REPEAT") or 1),
        help="measured runs per concurrency, the median one is reported (1) [BENCH_REPEAT]",
    )
    parser.add_argument(
        "--scenarios",
        default=_env("BENCH_SCENARIOS"),
        help=f"comma-separated subset of: {', '.join(catalogue.NAMES)} (all)",
    )
    parser.add_argument(
        "--concurrency",
        default=_env("BENCH_CONCURRENCY") or "1,16,64",
        help="connections in flight, comma-separated (1,16,64); the targets read 64",
    )
    parser.add_argument(
        "--soak-requests",
        type=int,
        default=_env("BENCH_SOAK_REQUESTS"),
        help="requests of the memory soak; RSS is read after each half (100000)",
    )
    parser.add_argument(
        "--soak-max-seconds",
        type=float,
        default=float(_env("BENCH_SOAK_MAX_SECONDS") or 60),
        help="skip the soak of a server that would need longer (60)",
    )
    parser.add_argument(
        "--write-delay",
        type=float,
        default=float(_env("BENCH_WRITE_DELAY") or 0.003),
        help="seconds per write of the emulated Kubernetes API (etcd's fsync) (0.003)",
    )
    parser.add_argument(
        "--server-cpus", default=_env("BENCH_SERVER_CPUS"), help="taskset list for servers (first CPU)"
    )
    parser.add_argument(
        "--load-cpus", default=_env("BENCH_LOAD_CPUS"), help="taskset list for wrk and stores (others)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--output", type=Path, default=Path(_env("BENCH_OUTPUT") or RESULTS), help="results folder"
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the servers' logs (the access logs whole) and data files",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        default=_flag("BENCH_PROFILE"),
        help="run each 1-worker `counter serve` under pyinstrument; reports in <output>/profiles-<time>/"
        " (the numbers of such a run are not comparable) [BENCH_PROFILE]",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=_env("BENCH_BASELINE"),
        metavar="DIR",
        help="a checkout (git worktree) of an earlier commit: every `counter serve` scenario also runs"
        " on its code, interleaved run by run, and the ratio is reported [BENCH_BASELINE]",
    )
    parser.add_argument(
        "--baseline-label",
        default=_env("BENCH_BASELINE_LABEL"),
        help="the baseline's name in the report (its `git rev-parse --short HEAD`) [BENCH_BASELINE_LABEL]",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    return parser


class UsageError(Exception):
    """A wrong option or a missing tool: one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    # A SIGTERM (make interrupted, `timeout`) unwinds like Ctrl-C: every server started is stopped.
    signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        selected = catalogue.select(args.scenarios)
        load.wrk_binary()
        options = _options(args, args.output / f"work-{stamp}")
        options = dataclasses.replace(options, keep_workdir=args.keep_workdir)
        if args.profile:
            options = dataclasses.replace(options, profile_dir=args.output / f"profiles-{stamp}")
        if args.baseline is not None:
            options = dataclasses.replace(options, baseline=_baseline(args, selected))
    except (UsageError, load.LoadError, ValueError) as error:
        sys.stderr.write(f"bench: {error}\n")
        return 2
    _log("measuring how busy the machine is before the run (1s)")
    busy = procs.machine_busy(1.0)
    if busy > BUSY_WARNING:
        _log(f"warning: the machine was {busy:.0%} busy before the run; numbers will be noisy")
    _log(f"CPUs: {options.cpus.note}")

    started = time.monotonic()
    results = _run_all(selected, options)
    elapsed = time.monotonic() - started

    checked = targets.evaluate({r.scenario.name: r for r in results})
    meta = _meta(args, options, busy, elapsed, stamp)
    path = report.save_json(report.to_json(results, checked, meta), args.output, stamp)
    plot = report.save_plot(results, args.output / "throughput.png", f"Counter Web Server, {stamp}")
    out = sys.stdout
    out.write("\n" + report.table(results) + "\n\n")
    sections = (report.defaults_text(results), report.memory_table(results), report.baseline_text(results))
    out.writelines(section + "\n\n" for section in sections if section)
    out.write(report.targets_text(checked) + "\n\n")
    if options.profile_dir is not None:
        out.write(
            f"Profiled run (pyinstrument): the numbers above are not comparable. {options.profile_dir}\n"
        )
    out.write(
        f"{options.cpus.note}; access log off, log level warning, except the rows 'defaults' and"
        " 'access log on' (access log on, log level info, written to a file);"
        f" * = ended with requests in flight. Took {elapsed:.0f}s.\n"
    )
    out.write(f"Results: {path} (and latest.json)" + (f", plot: {plot}" if plot else "") + "\n")
    if args.keep_workdir or any(r.error or r.skipped.startswith("did not start") for r in results):
        out.write(f"Server logs: {options.workdir / 'logs'}\n")
    else:
        shutil.rmtree(options.workdir, ignore_errors=True)
    if args.strict and any(t.status == targets.NOT_MET for t in checked):
        return 1
    return 0


def _options(args: argparse.Namespace, workdir: Path) -> scenarios.Options:
    defaults = QUICK if args.quick else FULL
    try:
        concurrencies = tuple(sorted({int(c) for c in str(args.concurrency).split(",") if c.strip()}))
    except ValueError:
        raise UsageError(f"--concurrency wants whole numbers, got {args.concurrency!r}") from None
    if not concurrencies or min(concurrencies) < 1:
        raise UsageError("--concurrency wants numbers >= 1")
    if args.repeat < 1:
        raise UsageError("--repeat wants a number >= 1")
    return scenarios.Options(
        duration=float(args.duration if args.duration is not None else defaults["duration"]),
        warmup=float(args.warmup if args.warmup is not None else defaults["warmup"]),
        concurrencies=concurrencies,
        repeat=args.repeat,
        soak_requests=int(
            args.soak_requests if args.soak_requests is not None else defaults["soak_requests"]
        ),
        soak_max_seconds=args.soak_max_seconds,
        write_delay=args.write_delay,
        cpus=procs.plan_cpus(args.server_cpus, args.load_cpus, pin=not args.no_pin),
        workdir=workdir,
    )


def _baseline(args: argparse.Namespace, selected: Sequence[Scenario]) -> servers.Baseline:
    if args.profile:
        raise UsageError("--baseline with --profile: a profiled run's numbers are not comparable")
    _log(f"checking that PYTHONPATH={Path(args.baseline) / 'src'} loads the baseline's code")
    baseline = servers.load_baseline(
        Path(args.baseline), args.baseline_label, [m for s in selected for m in s.modules]
    )
    app = baseline.imported.get("entrypoints.http.app", [""])[0]
    _log(f"baseline {baseline.label} ({baseline.describe or 'not a git checkout'}): its servers import {app}")
    return baseline


def _run_all(selected: Sequence[Scenario], options: scenarios.Options) -> list[ScenarioResult]:
    """Each scenario in turn; the stores they share stop when the last one is done."""
    results: list[ScenarioResult] = []
    with ExitStack() as stack:
        context = scenarios.Context(options=options, stack=stack, log=_log)
        for scenario in selected:
            result = scenarios.run_scenario(scenario, context)
            if result.skipped:
                _log(f"{scenario.name}: skipped: {result.skipped}")
            elif result.error:
                _log(f"{scenario.name}: stopped: {result.error}")
            if result.baseline is not None and result.baseline.skipped and not result.skipped:
                _log(f"{scenario.name}: baseline skipped: {result.baseline.skipped}")
            results.append(result)
    return results


def _meta(
    args: argparse.Namespace, options: scenarios.Options, busy: float, elapsed: float, stamp: str
) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "seconds": round(elapsed, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus_available": list(options.cpus.available),
        "cpu_plan": {
            "server": options.cpus.server,
            "load": options.cpus.load,
            "stores": options.cpus.stores,
            "pinned": options.cpus.pinned,
            "note": options.cpus.note,
        },
        "machine_busy_before": round(busy, 3),
        "wrk": _version([load.wrk_binary(), "--version"]),
        "git": _version(["git", "-C", str(servers.REPO_ROOT), "describe", "--always", "--dirty"]),
        "options": {
            "quick": args.quick,
            "duration": options.duration,
            "warmup": options.warmup,
            "concurrencies": list(options.concurrencies),
            "repeat": options.repeat,
            "soak_requests": options.soak_requests,
            "soak_max_seconds": options.soak_max_seconds,
            "write_delay": options.write_delay,
            "access_log": "off (COUNTER_ACCESS_LOG=false), except where a scenario's env sets it",
            "log_level": "warning, except where a scenario's env sets it",
            "server_output": "stdout and stderr of every server to a file under the work folder",
        },
        "baseline": None
        if options.baseline is None
        else {
            "dir": str(options.baseline.root),
            "label": options.baseline.label,
            "git": options.baseline.describe,
            "pythonpath": str(options.baseline.src),
            "imported": options.baseline.imported,
            "how": "the same `counter serve` of this virtualenv with the baseline's src/ first on"
            " PYTHONPATH; measured runs interleaved with the code under test's, this code first",
        },
    }


def _version(argv: list[str]) -> str:
    binary = shutil.which(argv[0])
    if binary is None:
        return ""
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [binary, *argv[1:]], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return (
        (completed.stdout or completed.stderr).strip().splitlines()[0]
        if (completed.stdout or completed.stderr).strip()
        else ""
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
