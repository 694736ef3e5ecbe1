"""The targets, each checked on one run's results (1 worker, 64 in flight)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.model import Kind, Run, ScenarioResult

TARGET_CONCURRENCY = 64
REDIS_VS_HEALTH = 0.75
SQLITE_VS_HEALTH = 0.6
REDIS_VS_PEER = 2.5
COALESCING_SPEED_UP = 20.0
MAX_WRITES_PER_INCREMENT = 0.1
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
    def run(name: str) -> Run | None:
        result = results.get(name)
        return None if result is None else result.at(concurrency)

    targets = [
        _ratio(
            "Redis POST /counter >= 0.75 x GET /health/live", run("redis"), run("health"), REDIS_VS_HEALTH
        ),
        _ratio(
            "SQLite POST /counter >= 0.6 x GET /health/live", run("sqlite"), run("health"), SQLITE_VS_HEALTH
        ),
        _ratio(
            "Redis POST /counter >= 2.5 x the FastAPI + redis-py peer",
            run("redis"),
            run("peer"),
            REDIS_VS_PEER,
        ),
        _ratio(
            "ConfigMap with coalescing >= 20 x without",
            run("configmap"),
            run("configmap-off"),
            COALESCING_SPEED_UP,
        ),
        _writes_per_increment(results.get("configmap"), concurrency),
        _vs_baseline(results, concurrency),
    ]
    targets += [_no_loss(result) for result in results.values() if result.scenario.is_post]
    targets += [
        _tail(result, concurrency)
        for result in results.values()
        if result.scenario.is_post and result.scenario.kind is Kind.COUNTER
    ]
    targets += [_rss(result) for result in results.values() if result.scenario.soak]
    return targets


def _ratio(goal: str, top: Run | None, bottom: Run | None, threshold: float) -> Target:
    if top is None or bottom is None or bottom.rps <= 0:
        return Target(goal, NOT_MEASURED, "not measured in this run")
    value = top.rps / bottom.rps
    return Target(
        goal,
        _status(value >= threshold),
        f"{value:.2f} x ({top.rps:,.0f} / {bottom.rps:,.0f} req/s)",
        value,
        threshold,
    )


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


def _no_loss(result: ScenarioResult) -> Target:
    goal = f"{result.scenario.label}: no increment lost (2xx answers = counter increase)"
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
