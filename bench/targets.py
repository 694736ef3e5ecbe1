"""The targets, each checked on one run's results (1 worker, 64 in flight)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.model import BUDGET_VARIABLE, Kind, Run, ScenarioResult

TARGET_CONCURRENCY = 64
# The reference of the ratios: the bare ASGI app on the service's server and flags (the ceiling).
REDIS_VS_CEILING = 0.6
REDIS_DEFAULTS_VS_CEILING = 0.5
REDIS_VS_PEER = 4.0
DEFAULTS_VS_LOG_OFF = 0.85
DEFAULTS_SCENARIOS = (("redis-log", "redis"), ("sqlite-log", "sqlite"))
COALESCING_SPEED_UP = 20.0
MAX_WRITES_PER_INCREMENT = 0.1
BUDGET_TOLERANCE = 0.1  # writes per second may exceed the budget by 10%
MAX_TAIL_RATIO = 4.0  # p99 / p50
MAX_RSS_GROWTH_PCT = 5.0
VS_BASELINE = 0.9
VS_BASELINE_SCENARIOS = ("redis", "sqlite")
MET = "MET"
NOT_MET = "NOT MET"
NOT_MEASURED = "n/a"


@dataclass(frozen=True, slots=True)
class Target:
    goal: str
    status: str
    measured: str  # the ratio or value, readable
    value: float | None = None
    threshold: float | None = None


def evaluate(results: Mapping[str, ScenarioResult], concurrency: int = TARGET_CONCURRENCY) -> list[Target]:
    def ratio(goal: str, top: str, bottom: str, threshold: float) -> Target:
        return _ratio(goal, results, top, bottom, threshold, concurrency=concurrency)

    targets = [
        ratio(
            f"Redis POST /counter >= {REDIS_VS_CEILING:g} x the bare-ASGI ceiling, access log off",
            "redis",
            "ceiling",
            REDIS_VS_CEILING,
        ),
        ratio(
            f"Redis POST /counter >= {REDIS_DEFAULTS_VS_CEILING:g} x the ceiling with the defaults"
            " (access log on)",
            "redis-log",
            "ceiling",
            REDIS_DEFAULTS_VS_CEILING,
        ),
        ratio(f"Redis POST /counter >= {REDIS_VS_PEER:g} x the FastAPI peer", "redis", "peer", REDIS_VS_PEER),
        _pairs(
            f"defaults (access log on) >= {DEFAULTS_VS_LOG_OFF:g} x access log off, on Redis and on SQLite",
            results,
            DEFAULTS_SCENARIOS,
            DEFAULTS_VS_LOG_OFF,
            concurrency=concurrency,
        ),
        ratio(
            f"ConfigMap with coalescing >= {COALESCING_SPEED_UP:g} x without",
            "configmap",
            "configmap-off",
            COALESCING_SPEED_UP,
        ),
        _writes_per_increment(results.get("configmap"), concurrency),
        _write_budget(results, concurrency),
        _vs_baseline(results, concurrency),
    ]
    targets += [_no_loss(result) for result in results.values() if result.scenario.is_post]
    targets += [
        _access_lines(result)
        for result in results.values()
        if result.scenario.access_log and result.scenario.is_post
    ]
    targets += [
        _tail(result, concurrency)
        for result in results.values()
        if result.scenario.is_post and result.scenario.kind is Kind.COUNTER
    ]
    targets += [_rss(result) for result in results.values() if result.scenario.soak]
    return targets


def why_not(results: Mapping[str, ScenarioResult], name: str, concurrency: int) -> str:
    """Why `name` has no measured run at `concurrency`, in a few words."""
    result = results.get(name)
    if result is None:
        return f"{name} not in this run"
    if result.skipped or result.error:
        return (
            f"{name} {'skipped' if result.skipped else 'stopped'}: {_short(result.skipped or result.error)}"
        )
    return f"{name} not measured at {concurrency} in flight"


def _ratio(
    goal: str,
    results: Mapping[str, ScenarioResult],
    top_name: str,
    bottom_name: str,
    threshold: float,
    *,
    concurrency: int,
) -> Target:
    top, bottom = (_at(results, name, concurrency) for name in (top_name, bottom_name))
    if top is None or bottom is None or bottom.rps <= 0:
        missing = [
            why_not(results, n, concurrency) for n, r in ((top_name, top), (bottom_name, bottom)) if r is None
        ]
        return Target(goal, NOT_MEASURED, "; ".join(missing) or f"{bottom_name}: 0 req/s")
    value = top.rps / bottom.rps
    return Target(
        goal,
        _status(value >= threshold),
        f"{_times(value, threshold)} x ({top.rps:,.0f} / {bottom.rps:,.0f} req/s)",
        value,
        threshold,
    )


def _times(value: float, threshold: float) -> str:
    """A ratio with two decimals, three where two would read as the threshold itself."""
    return f"{value:.3f}" if round(value, 2) == round(threshold, 2) else f"{value:.2f}"


def _at(results: Mapping[str, ScenarioResult], name: str, concurrency: int) -> Run | None:
    result = results.get(name)
    return None if result is None else result.at(concurrency)


def _pairs(
    goal: str,
    results: Mapping[str, ScenarioResult],
    pairs: tuple[tuple[str, str], ...],
    threshold: float,
    *,
    concurrency: int,
) -> Target:
    """Each pair's ratio: not met as soon as one is below, met when all are measured and above."""
    parts, values, missing = [], [], []
    for top_name, bottom_name in pairs:
        top, bottom = (_at(results, name, concurrency) for name in (top_name, bottom_name))
        if top is None or bottom is None or bottom.rps <= 0:
            missing += [
                why_not(results, n, concurrency)
                for n, r in ((top_name, top), (bottom_name, bottom))
                if r is None
            ]
            continue
        value = top.rps / bottom.rps
        values.append(value)
        parts.append(f"{bottom_name} {_times(value, threshold)} x ({top.rps:,.0f} / {bottom.rps:,.0f})")
    detail = "; ".join(parts + missing)
    lowest = min(values, default=None)
    if lowest is not None and lowest < threshold:
        return Target(goal, NOT_MET, detail, lowest, threshold)
    if missing:
        return Target(goal, NOT_MEASURED, detail, lowest, threshold)
    return Target(goal, MET, detail, lowest, threshold)


def _vs_baseline(results: Mapping[str, ScenarioResult], concurrency: int) -> Target:
    """Redis and SQLite against the same scenarios on the baseline's code, interleaved in this run:
    met when both are measured and at least 0.9 x, not met as soon as one is below."""
    goal = f"Redis and SQLite POST /counter at {concurrency} in flight >= 0.9 x the baseline"
    if all(results[n].baseline is None for n in VS_BASELINE_SCENARIOS if n in results):
        return Target(goal, NOT_MEASURED, "not measured in this run (--baseline DIR)")
    parts, values, missing = [], [], []
    label = ""
    for name in VS_BASELINE_SCENARIOS:
        result = results.get(name)
        if result is None or result.baseline is None:
            missing.append(f"{name}: {'not in this run' if result is None else 'no --baseline'}")
            continue
        compared = result.comparison(concurrency)
        if compared is None:
            base = result.baseline
            why = result.skipped or result.error or base.skipped or base.error or "not measured"
            missing.append(f"{name}: {_short(why)}")
            continue
        label = result.baseline.variant
        values.append(compared.ratio)
        parts.append(f"{name} {compared.ratio:.2f} x ({compared.rps:,.0f} / {compared.baseline_rps:,.0f})")
    detail = "; ".join(parts + missing) + (f"; baseline {label}" if label else "")
    lowest = min(values, default=None)
    if lowest is not None and lowest < VS_BASELINE:
        return Target(goal, NOT_MET, detail, lowest, VS_BASELINE)
    if missing:
        return Target(goal, NOT_MEASURED, detail, lowest, VS_BASELINE)
    return Target(goal, MET, detail, lowest, VS_BASELINE)


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:80]


def _writes_per_increment(result: ScenarioResult | None, concurrency: int) -> Target:
    goal = "ConfigMap with coalescing: <= 0.1 API writes per increment"
    run = None if result is None else result.at(concurrency)
    value = None if run is None else run.writes_per_increment
    if run is None or value is None:
        return Target(goal, NOT_MEASURED, "not measured in this run")
    detail = f"{value:.3f} ({run.api_write_requests} write requests for {run.increments} increments)"
    return Target(goal, _status(value <= MAX_WRITES_PER_INCREMENT), detail, value, MAX_WRITES_PER_INCREMENT)


def _write_budget(results: Mapping[str, ScenarioResult], concurrency: int) -> Target:
    """configmap-budget: the API write requests per second of its measured run against the budget
    its COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND sets (+10%). The budget is a token bucket that
    allows `rate * t` writes plus a burst of one second's worth (src/adapters/configmap/budget.py),
    and the bucket fills up whenever the store is idle (between two runs, or while the baseline's
    server runs): the burst is taken off before the rate is compared, else a short run would read
    as over budget."""
    name = "configmap-budget"
    result = results.get(name)
    budget = float((result.scenario.env_value(BUDGET_VARIABLE) if result else None) or 5)
    limit = budget * (1 + BUDGET_TOLERANCE)
    goal = f"ConfigMap writes per second <= the budget ({budget:g}) + {BUDGET_TOLERANCE:.0%}, past its burst"
    run = _at(results, name, concurrency)
    raw = None if run is None else run.writes_per_second
    if run is None or raw is None or run.api_write_requests is None:
        return Target(goal, NOT_MEASURED, why_not(results, name, concurrency))
    steady = max(0.0, run.api_write_requests - budget) / run.elapsed_s
    detail = (
        f"{steady:.2f} writes/s ({run.api_write_requests} write requests in {run.elapsed_s:.1f}s ="
        f" {raw:.2f}/s, less a burst of {budget:g}; {run.increments} increments; limit {limit:g})"
    )
    return Target(goal, _status(steady <= limit), detail, steady, limit)


def _access_lines(result: ScenarioResult) -> Target:
    """An access-log scenario really wrote its log: one line per POST answered (a run that ended
    with requests in flight may have a line for each of those too)."""
    scenario = result.scenario
    goal = f"{scenario.label}: one access line per {scenario.method} answered"
    runs = [r for r in result.runs if r.log_lines is not None]
    if not runs:
        return Target(goal, NOT_MEASURED, result.skipped or result.error or "not measured in this run")
    lines = sum(r.log_lines or 0 for r in runs)
    answered = sum(r.answered for r in runs)
    exact = all(
        r.answered <= (r.log_lines or 0) <= (r.answered if r.complete else max(r.sent, r.answered))
        for r in runs
    )
    detail = f"{lines:,} lines for {answered:,} answers in {len(runs)} runs"
    return Target(goal, _status(exact), detail, float(lines - answered), 0.0)


def _no_loss(result: ScenarioResult) -> Target:
    goal = f"{result.scenario.label}: no increment lost (2xx answers = counter increase)"
    if not result.scenario.checks_counter:
        return Target(goal, NOT_MEASURED, "the bare app has no counter: nothing to check")
    checked = [r for r in result.runs if r.lost is not None]
    if not checked:
        return Target(goal, NOT_MEASURED, result.skipped or result.error or "not measured in this run")
    lost = sum(abs(r.lost or 0) for r in checked)
    incomplete = sum(1 for r in checked if not r.complete)
    increments = sum(r.increments or 0 for r in checked)
    detail = f"{lost} off in {len(checked)} runs, {increments:,} increments"
    if incomplete:
        detail += f"; {incomplete} runs ended with requests in flight"
    return Target(goal, _status(lost == 0), detail, float(lost), 0.0)


def _tail(result: ScenarioResult, concurrency: int) -> Target:
    goal = f"{result.scenario.label}: p99 <= 4 x p50"
    run = result.at(concurrency)
    if run is None or run.p50_ms <= 0:
        return Target(goal, NOT_MEASURED, result.skipped or result.error or "not measured in this run")
    value = run.p99_ms / run.p50_ms
    detail = f"{value:.2f} x (p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms)"
    return Target(goal, _status(value <= MAX_TAIL_RATIO), detail, value, MAX_TAIL_RATIO)


def _rss(result: ScenarioResult) -> Target:
    memory = result.memory
    half = 0 if memory is None else memory.soak_requests // 2
    goal = f"{result.scenario.label}: RSS growth < 5% from {half // 1000}k to {2 * half // 1000}k requests"
    growth = None if memory is None else memory.max_growth_pct
    if memory is None or growth is None:
        reason = (memory.note if memory else "") or result.skipped or result.error or "not measured"
        return Target(goal, NOT_MEASURED, reason)
    detail = f"{growth:+.2f}% (largest of {len(memory.workers)} workers)"
    return Target(goal, _status(growth < MAX_RSS_GROWTH_PCT), detail, growth, MAX_RSS_GROWTH_PCT)


def _status(ok: bool) -> str:
    return MET if ok else NOT_MET
