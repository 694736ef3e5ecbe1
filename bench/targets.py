"""The targets of issue 6, each checked on one run's results (1 worker, 64 in flight)."""

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
