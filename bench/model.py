"""What the harness measures: scenarios and their results (plain dataclasses, saved as JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The ConfigMap store's write budget (API writes per second), set in the configmap-budget scenario.
BUDGET_VARIABLE = "COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND"


class Kind(StrEnum):
    COUNTER = "counter"  # `counter serve`
    PEER = "peer"  # bench/peers/fastapi_redis_app.py
    CEILING = "ceiling"  # bench/peers/bare_asgi.py: no framework, no store, served like `counter serve`


class Needs(StrEnum):
    REDIS = "redis"
    KUBE = "kube"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # what --scenarios selects
    label: str  # the table's first column
    store: str  # the plot's legend
    method: str
    path: str
    kind: Kind = Kind.COUNTER
    workers: int = 1
    env: tuple[tuple[str, str], ...] = ()  # COUNTER_* variables besides the defaults
    needs: frozenset[Needs] = frozenset()
    modules: tuple[str, ...] = ()  # must be importable, else the scenario is skipped
    only_concurrency: int | None = None  # measured at this concurrency only
    soak: bool = True  # RSS after warm-up and after the soak's two halves
    configmap: bool = False  # count the emulator's API writes
    server: str = "uvicorn"  # the HTTP server: uvicorn, or granian
    settings: tuple[str, ...] = ()  # fields of the service's Settings it needs, else it is skipped
    log_off: str | None = None  # the same scenario with the access log off (compared with this one)

    @property
    def is_post(self) -> bool:
        return self.method == "POST"

    @property
    def checks_counter(self) -> bool:
        """Whether its runs read the counter before and after (the ceiling has none)."""
        return self.is_post and self.kind is not Kind.CEILING

    @property
    def access_log(self) -> bool:
        """Whether the server writes an access line per request (the service's default)."""
        return dict(self.env).get("COUNTER_ACCESS_LOG", "false") == "true"

    def env_value(self, variable: str) -> str | None:
        return dict(self.env).get(variable)


@dataclass(slots=True)
class Run:
    phase: str  # warmup, measure or soak
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    ok: int
    failed: int
    socket_errors: int
    timeouts: int
    sent: int
    elapsed_s: float
    complete: bool
    server_cpu_share: float  # CPU seconds of the server's processes per second of the run
    load_cpu_share: float  # the same for wrk
    store_cpu_share: float | None = None  # the same for redis-server or the API emulator
    increments: int | None = None  # GET /counter after minus before
    lost: int | None = None  # 2xx answers minus increments (0: exact)
    api_write_requests: int | None = None  # create/update/patch/delete requests to the API
    api_writes_applied: int | None = None  # writes the emulator applied
    api_reads: int | None = None  # get/list requests to the API
    log_lines: int | None = None  # access lines of the measured request the server wrote in the run

    @property
    def errors(self) -> int:
        return self.failed + self.socket_errors

    @property
    def answered(self) -> int:
        return self.ok + self.failed

    @property
    def writes_per_increment(self) -> float | None:
        if self.api_write_requests is None or not self.increments:
            return None
        return self.api_write_requests / self.increments

    @property
    def writes_per_second(self) -> float | None:
        """API write requests per second of the measured time (what a write budget caps)."""
        if self.api_write_requests is None or self.elapsed_s <= 0:
            return None
        return self.api_write_requests / self.elapsed_s


@dataclass(slots=True)
class WorkerMemory:
    pid: int
    after_warmup_kib: int | None
    after_half_kib: int | None = None
    after_soak_kib: int | None = None

    @property
    def growth_pct(self) -> float | None:
        if not self.after_half_kib or self.after_soak_kib is None:
            return None
        return 100.0 * (self.after_soak_kib - self.after_half_kib) / self.after_half_kib


@dataclass(slots=True)
class Memory:
    soak_requests: int  # RSS read once the server answered half of these, and all (warm-up included)
    workers: list[WorkerMemory] = field(default_factory=list)
    served_at_half: int | None = None  # requests the server had answered at each checkpoint
    served_at_end: int | None = None
    note: str = ""

    @property
    def max_growth_pct(self) -> float | None:
        growths = [g for w in self.workers if (g := w.growth_pct) is not None]
        return max(growths) if growths else None


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    cpus: str = ""
    runs: list[Run] = field(default_factory=list)
    memory: Memory | None = None
    skipped: str = ""  # why it did not run
    error: str = ""  # why it stopped half way
    notes: list[str] = field(default_factory=list)
    variant: str = ""  # '' for the code under test; the baseline's label for the baseline's code
    baseline: ScenarioResult | None = None  # the same scenario on the baseline's code (--baseline)

    def measured(self) -> list[Run]:
        return [r for r in self.runs if r.phase == "measure"]

    def at(self, concurrency: int) -> Run | None:
        return next((r for r in self.measured() if r.concurrency == concurrency), None)

    def timed(self, concurrency: int) -> list[Run]:
        """Every timed run at `concurrency` (the median one and the other repeats), in order."""
        return [r for r in self.runs if r.phase in {"measure", "repeat"} and r.concurrency == concurrency]

    def comparisons(self) -> list[Comparison]:
        """Requests/s against the baseline's, per concurrency measured on both sides."""
        baseline = self.baseline
        if baseline is None:
            return []
        found = []
        for run in self.measured():
            base = baseline.at(run.concurrency)
            if base is None or base.rps <= 0:
                continue
            pairs = zip(self.timed(run.concurrency), baseline.timed(run.concurrency), strict=False)
            found.append(
                Comparison(
                    concurrency=run.concurrency,
                    rps=run.rps,
                    baseline_rps=base.rps,
                    ratio=run.rps / base.rps,
                    pair_ratios=[a.rps / b.rps for a, b in pairs if b.rps > 0],
                )
            )
        return found

    def comparison(self, concurrency: int) -> Comparison | None:
        return next((c for c in self.comparisons() if c.concurrency == concurrency), None)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The code under test against the baseline's code at one concurrency, from one run."""

    concurrency: int
    rps: float  # the median run of the code under test
    baseline_rps: float  # the median run of the baseline's code
    ratio: float  # rps / baseline_rps
    pair_ratios: list[float]  # each run against the baseline's run right after it
