"""How a scenario is run: start, warm up, soak (RSS), measure, stop (the scenarios: catalogue.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import redis

from bench import access_log, load, procs, servers
from bench.model import Kind, Memory, Needs, Run, Scenario, ScenarioResult, WorkerMemory

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    warmup: float
    concurrencies: tuple[int, ...]
    soak_requests: int
    soak_max_seconds: float
    write_delay: float
    cpus: procs.CpuPlan
    workdir: Path
    repeat: int = 1  # measured runs per concurrency; the median one is reported
    profile_dir: Path | None = None  # run `counter serve` under pyinstrument, sessions saved here
    baseline: servers.Baseline | None = None  # also run each `counter serve` on this checkout's code
    keep_workdir: bool = False  # keep the access logs whole (else cut to their tail after the scenario)


@dataclass(slots=True)
class Context:
    """What scenarios share: options, and the stores started on first use (one redis-server and
    one emulator for the whole run; each scenario uses its own keys or ConfigMap)."""

    options: Options
    stack: ExitStack
    log: Callable[[str], None]
    _redis: servers.RedisServer | None = None
    _kube: servers.KubeEmulator | None = None
    _failed: dict[Needs, str] = field(default_factory=dict)
    # The service's settings as its source declares them when the run starts.
    declared: frozenset[str] = field(
        default_factory=lambda: servers.declared_settings(servers.REPO_ROOT / "src")
    )

    def redis(self) -> servers.RedisServer:
        if self._redis is None:
            self._redis = self._start(
                Needs.REDIS,
                servers.redis_server(self.options.cpus.stores, self.options.workdir / "redis"),
            )
        return self._redis

    def kube(self) -> servers.KubeEmulator:
        if self._kube is None:
            self._kube = self._start(
                Needs.KUBE,
                servers.kube_emulator(
                    self.options.cpus.stores, self.options.workdir / "kube", self.options.write_delay
                ),
            )
        return self._kube

    def store_pids(self, scenario: Scenario) -> list[int]:
        """The processes of the stores behind the scenario's server (already started)."""
        pids = []
        if Needs.REDIS in scenario.needs and self._redis is not None:
            pids.append(self._redis.process.pid)
        if Needs.KUBE in scenario.needs and self._kube is not None:
            pids.append(self._kube.process.pid)
        return pids

    def _start(self, need: Needs, manager: AbstractContextManager[_T]) -> _T:
        if need in self._failed:
            raise procs.StartError(self._failed[need])
        try:
            return self.stack.enter_context(manager)
        except procs.StartError as error:
            self._failed[need] = str(error)
            raise


def unavailable(scenario: Scenario, declared: frozenset[str]) -> str:
    """Why the scenario cannot run here ('' when it can); `declared`: the service's settings."""
    missing = [_variable(name) for name in scenario.settings if name not in declared]
    if missing:
        return f"{', '.join(missing)} is not a setting of the service measured (src/entrypoints/settings.py)"
    for module in scenario.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            if module == "granian":
                return "granian is not installed (pip install granian)"
            return f"module {module} is not there yet"
    if Needs.REDIS in scenario.needs and shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install -y redis-server)"
    return ""


def _variable(setting: str) -> str:
    return f"COUNTER_{setting.upper()}"


# Failures that end one scenario, not the run.
_SCENARIO_ERRORS = (procs.StartError, load.LoadError, httpx.HTTPError, redis.RedisError, OSError, KeyError)


def run_scenario(scenario: Scenario, context: Context) -> ScenarioResult:
    result = ScenarioResult(scenario=scenario)
    result.skipped = unavailable(scenario, context.declared)
    if result.skipped:
        return result
    cpus, note = context.options.cpus.server_for(scenario.workers)
    result.cpus = cpus or "not pinned"
    if note:
        result.notes.append(note)
    profile = _profile_path(scenario, context.options)
    if profile is not None:
        result.notes.append("profiled with pyinstrument: its numbers are slower than the real ones")
    result.baseline = _baseline_result(scenario, context, result.cpus)
    sides = _start_and_measure(scenario, context, result, cpus, profile)
    if scenario.kind is Kind.CEILING:
        result.notes += _ceiling_notes(result)
    if scenario.access_log:
        for side in sides:
            side.result.notes.append(
                access_log.note(side.server.log_path, side.result, keep=context.options.keep_workdir)
            )
    if profile is not None and profile.exists():
        rendered = servers.render_profile(profile)
        result.notes += [f"profile: {path}" for path in rendered]
    return result


# Below this CPU share of the server, a ceiling's run was bounded by something else.
_CEILING_MIN_CPU = 0.85


def _ceiling_notes(result: ScenarioResult) -> list[str]:
    """A reference that did not keep its server's CPU busy is too low, and every ratio taken
    against it too high: say so."""
    return [
        f"at {run.concurrency} in flight the server used {run.server_cpu_share:.0%} of its CPU: something"
        " else bounded this run (the load generator, or other work on the server's CPU), and the"
        " ratios against it read too high"
        for run in result.measured()
        if run.server_cpu_share < _CEILING_MIN_CPU
    ]


def _start_and_measure(
    scenario: Scenario, context: Context, result: ScenarioResult, cpus: str, profile: Path | None
) -> list[_Side]:
    """Start the scenario's server (and the baseline's), measure, stop; the servers it started."""
    started: list[_Side] = []
    try:
        with ExitStack() as stack:
            server = stack.enter_context(_server(scenario, context, cpus, profile))
            if server.call:
                result.notes.append(
                    f"served by `counter serve`, the bare app in place of its own: {server.call}"
                )
            sides = [_Side(server, result)]
            if result.baseline is not None and not result.baseline.skipped:
                sides += _start_baseline(scenario, context, cpus, stack, result.baseline)
            started = list(sides)
            _measure_servers(scenario, context, sides)
    except procs.StartError as error:
        result.skipped = f"did not start: {error}"
    except _SCENARIO_ERRORS as error:
        result.error = f"{type(error).__name__}: {error}"
    return started


def _baseline_result(scenario: Scenario, context: Context, cpus: str) -> ScenarioResult | None:
    baseline = context.options.baseline
    if baseline is None or scenario.kind is not Kind.COUNTER:
        return None
    result = ScenarioResult(scenario=scenario, cpus=cpus, variant=baseline.label)
    settings = [_variable(name) for name in scenario.settings if name not in baseline.settings]
    missing = baseline.missing(scenario.modules)
    if settings:
        result.skipped = f"{', '.join(settings)} is not a setting of the baseline"
    elif missing:
        result.skipped = f"module {', '.join(missing)} is not in the baseline"
    return result


def _start_baseline(
    scenario: Scenario, context: Context, cpus: str, stack: ExitStack, result: ScenarioResult
) -> list[_Side]:
    """The baseline's server, on the same CPUs; if it does not start, the scenario goes on alone."""
    try:
        server = stack.enter_context(_server(scenario, context, cpus, None, context.options.baseline))
    except procs.StartError as error:
        result.skipped = f"did not start: {error}"
        context.log(f"{scenario.name}: the baseline's server did not start")
        return []
    return [_Side(server, result)]


@dataclass(slots=True)
class _Side:
    """One server of a scenario and its results: the code under test, or the baseline's code."""

    server: servers.Server
    result: ScenarioResult

    @property
    def name(self) -> str:
        scenario = self.result.scenario.name
        return f"{scenario} [baseline {self.result.variant}]" if self.result.variant else scenario


def _profile_path(scenario: Scenario, options: Options) -> Path | None:
    if options.profile_dir is None or scenario.kind is not Kind.COUNTER or scenario.workers != 1:
        return None
    return options.profile_dir / f"{scenario.name}.pyisession"


@contextlib.contextmanager
def _server(
    scenario: Scenario,
    context: Context,
    cpus: str,
    profile: Path | None,
    baseline: servers.Baseline | None = None,
) -> Iterator[servers.Server]:
    """The scenario's server; with `baseline`, on the baseline's code, with its own SQLite file,
    Redis keys and ConfigMap (both servers of a scenario are up at once, loaded in turn)."""
    workdir = context.options.workdir
    # The scenario's name, or e.g. redis-baseline: a file, key prefix and ConfigMap of its own.
    own = f"{scenario.name}-baseline" if baseline is not None else scenario.name
    log_path = workdir / "logs" / f"{own}.log"
    if scenario.kind is Kind.PEER:
        with servers.peer_server(context.redis().url, cpus=cpus, log_path=log_path) as server:
            yield server
        return
    if scenario.kind is Kind.CEILING:
        with servers.ceiling_server(scenario.server, cpus=cpus, log_path=log_path) as server:
            yield server
        return
    env = dict(scenario.env)
    if env.get("COUNTER_BACKEND") == "sqlite":
        db = workdir / "sqlite" / own / "counter.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        env["COUNTER_SQLITE_PATH"] = str(db)
    if Needs.REDIS in scenario.needs:
        env["COUNTER_REDIS_URL"] = context.redis().url
        env["COUNTER_REDIS_PREFIX"] = f"bench:{own}:"
    if Needs.KUBE in scenario.needs:
        env["COUNTER_KUBECONFIG"] = str(context.kube().kubeconfig)
        env["COUNTER_CONFIGMAP_NAME"] = f"bench-{own}"
        env["COUNTER_CONFIGMAP_NAMESPACE"] = "default"
    with servers.counter_server(
        env,
        workers=scenario.workers,
        cpus=cpus,
        log_path=log_path,
        profile=profile,
        baseline=baseline,
        server=scenario.server,
    ) as server:
        if scenario.server == "granian" and not procs.maps_mention(server.all_pids(), "_granian"):
            raise procs.StartError("COUNTER_SERVER=granian, but no process of the server loaded granian")
        yield server


def _measure_servers(scenario: Scenario, context: Context, sides: list[_Side]) -> None:
    """Warm up and soak each server in turn, then the measured runs interleaved: for each
    concurrency and repeat, one run on each server, the code under test first, so that what else
    the machine does hits both alike."""
    options = context.options
    concurrencies = (
        (scenario.only_concurrency,) if scenario.only_concurrency is not None else options.concurrencies
    )
    top = max(concurrencies)
    for side in list(sides):
        with _baseline_may_fail(context, sides, side):
            _warm_up(scenario, context, side, top)
    for concurrency in concurrencies:
        context.log(
            f"{scenario.name}: measure {options.duration:g}s at {concurrency} connections"
            + (f", {options.repeat} times" if options.repeat > 1 else "")
            + (f", interleaved with baseline {sides[1].result.variant}" if len(sides) > 1 else "")
        )
        for _ in range(options.repeat):
            for side in list(sides):
                with _baseline_may_fail(context, sides, side):
                    run = _run(
                        scenario, context, side.server, "repeat", concurrency, seconds=options.duration
                    )
                    side.result.runs.append(run)
        for side in sides:
            # The run with the median throughput stands for the concurrency; the others stay in the JSON.
            runs = side.result.timed(concurrency)
            if runs:
                sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2].phase = "measure"


def _warm_up(scenario: Scenario, context: Context, side: _Side, concurrency: int) -> None:
    options = context.options
    context.log(f"{side.name}: warm-up {options.warmup:g}s at {concurrency} connections")
    warm = _run(scenario, context, side.server, "warmup", concurrency, seconds=options.warmup)
    side.result.runs.append(warm)
    if scenario.soak:
        side.result.memory = _soak(scenario, context, side, concurrency, served=warm.ok + warm.failed)


@contextlib.contextmanager
def _baseline_may_fail(context: Context, sides: list[_Side], side: _Side) -> Iterator[None]:
    """A failure on the baseline's server ends the baseline's measurement only (it is dropped from
    `sides`); one on the server under test ends the scenario."""
    if side is sides[0]:
        yield
        return
    try:
        yield
    except _SCENARIO_ERRORS as error:
        side.result.error = f"{type(error).__name__}: {error}"
        context.log(f"{side.name}: stopped: {side.result.error}")
        sides.remove(side)


def _soak(scenario: Scenario, context: Context, side: _Side, concurrency: int, *, served: int) -> Memory:
    """RSS of each worker after the warm-up, then once the server has answered half of
    --soak-requests and all of them (warm-up included)."""
    options = context.options
    server, result = side.server, side.result
    memory = Memory(
        soak_requests=options.soak_requests,
        workers=[WorkerMemory(pid, procs.rss_kib(pid)) for pid in server.worker_pids()],
    )
    warm = result.runs[-1]
    remaining = options.soak_requests - served
    estimate = remaining / warm.rps if warm.rps > 0 else math.inf
    if estimate > options.soak_max_seconds:
        memory.note = (
            f"soak skipped: {remaining} more requests at {warm.rps:.0f}/s would take ~{estimate:.0f}s"
            f" (limit --soak-max-seconds {options.soak_max_seconds:g})"
        )
        return memory
    for checkpoint in (options.soak_requests // 2, options.soak_requests):
        budget = checkpoint - served
        if budget > 0:
            context.log(f"{side.name}: soak {budget} requests (up to {checkpoint} in all)")
            run = _run(
                scenario,
                context,
                server,
                "soak",
                concurrency,
                budget=budget,
                max_seconds=options.soak_max_seconds * 2 + 30,
            )
            result.runs.append(run)
            served += run.ok + run.failed
        for worker in memory.workers:
            if checkpoint < options.soak_requests:
                worker.after_half_kib = procs.rss_kib(worker.pid)
            else:
                worker.after_soak_kib = procs.rss_kib(worker.pid)
        if checkpoint < options.soak_requests:
            memory.served_at_half = served
        else:
            memory.served_at_end = served
    return memory


def _run(
    scenario: Scenario,
    context: Context,
    server: servers.Server,
    phase: str,
    concurrency: int,
    *,
    seconds: float = 0.0,
    budget: int = 0,
    max_seconds: float | None = None,
) -> Run:
    """One wrk run, with the counter read before and after (and the API's counts for ConfigMap,
    the access lines the server wrote when its access log is on)."""
    check = scenario.checks_counter
    kube = context.kube() if scenario.configmap else None
    count_before = server.read_count() if check else 0
    log_offset = access_log.size(server.log_path) if scenario.access_log else None
    stats_before = kube.stats() if kube else None
    pids = server.all_pids()
    store_pids = context.store_pids(scenario)
    cpu_before = procs.cpu_seconds(pids)
    store_before = procs.cpu_seconds(store_pids)
    measured = load.run(
        server.url,
        method=scenario.method,
        path=scenario.path,
        concurrency=concurrency,
        cpus=context.options.cpus.load,
        seconds=seconds,
        budget=budget,
        max_seconds=max_seconds,
    )
    cpu_after = procs.cpu_seconds(pids)
    store_after = procs.cpu_seconds(store_pids)
    elapsed = measured.elapsed_s
    run = Run(
        phase=phase,
        concurrency=concurrency,
        rps=measured.rps,
        p50_ms=measured.p50_ms,
        p90_ms=measured.p90_ms,
        p99_ms=measured.p99_ms,
        p999_ms=measured.p999_ms,
        max_ms=measured.max_ms,
        ok=measured.ok,
        failed=measured.failed,
        socket_errors=measured.socket_errors,
        timeouts=measured.timeouts,
        sent=measured.sent,
        elapsed_s=measured.elapsed_s,
        complete=measured.complete,
        server_cpu_share=(cpu_after - cpu_before) / elapsed if elapsed else 0.0,
        load_cpu_share=measured.load_cpu_share,
        store_cpu_share=(store_after - store_before) / elapsed if store_pids and elapsed else None,
    )
    if log_offset is not None:
        line = f"{scenario.method} {scenario.path} ".encode()
        run.log_lines = access_log.count_lines(server.log_path, log_offset, line, measured.answered)
    if check:
        run.increments = server.read_count() - count_before
        run.lost = measured.ok - run.increments
    if kube is not None and stats_before is not None:
        stats_after = kube.stats()
        run.api_write_requests = _verbs(stats_after, _WRITE_VERBS) - _verbs(stats_before, _WRITE_VERBS)
        run.api_reads = _verbs(stats_after, _READ_VERBS) - _verbs(stats_before, _READ_VERBS)
        run.api_writes_applied = int(stats_after["writes"]) - int(stats_before["writes"])
    return run


# An access line: the service's access logger and the request, in the text and the JSON format alike
# ("... counter.access [id] POST /counter 200 ...", {"logger":"counter.access","event":"POST /counter 200"}).
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_READ_VERBS = frozenset({"get", "list", "watch"})


def _verbs(stats: dict[str, object], verbs: frozenset[str]) -> int:
    requests = stats.get("requests")
    if not isinstance(requests, dict):
        raise KeyError("the emulator's stats have no 'requests' by verb")
    return sum(int(count) for verb, count in requests.items() if verb in verbs)
