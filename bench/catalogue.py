"""The scenarios `make bench` knows: what each serves, with which settings, measured how."""

from __future__ import annotations

from bench.model import BUDGET_VARIABLE, Kind, Needs, Scenario

_POST = "POST"
_COUNTER = "/counter"
_LIVE = "/health/live"

_ACCESS_LOG_ON = (("COUNTER_ACCESS_LOG", "true"), ("COUNTER_LOG_LEVEL", "info"))  # the service's defaults
BUDGET = 5  # API writes per second, in the configmap-budget scenario
_NO_BUDGET = (BUDGET_VARIABLE, "0")  # the other ConfigMap scenarios measure what coalescing does

CATALOGUE: tuple[Scenario, ...] = (
    Scenario(
        "ceiling",
        "ceiling: bare ASGI, uvicorn",
        "ceiling: bare ASGI (uvicorn)",
        _POST,
        _COUNTER,
        kind=Kind.CEILING,
        soak=False,
    ),
    Scenario(
        "ceiling-granian",
        "ceiling: bare ASGI, granian",
        "ceiling: bare ASGI (granian)",
        _POST,
        _COUNTER,
        kind=Kind.CEILING,
        soak=False,
        server="granian",
        settings=("server",),
        modules=("granian",),
    ),
    Scenario(
        "health",
        "GET /health/live",
        "health (a Litestar route)",
        "GET",
        _LIVE,
        env=(("COUNTER_BACKEND", "memory"),),
    ),
    Scenario(
        "health-log",
        "GET /health/live, access log on",
        "health + access log",
        "GET",
        _LIVE,
        env=(("COUNTER_BACKEND", "memory"), *_ACCESS_LOG_ON),
        only_concurrency=64,
        soak=False,
    ),
    Scenario("memory", "POST memory", "memory", _POST, _COUNTER, env=(("COUNTER_BACKEND", "memory"),)),
    Scenario(
        "sqlite",
        "POST sqlite",
        "sqlite",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "sqlite"),),
        modules=("adapters.sqlite",),
    ),
    Scenario(
        "sqlite-log",
        "POST sqlite, defaults (access log on)",
        "sqlite, defaults (access log on)",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "sqlite"), *_ACCESS_LOG_ON, ("COUNTER_LOG_FORMAT", "text")),
        modules=("adapters.sqlite",),
        only_concurrency=64,
        soak=False,
        log_off="sqlite",
    ),
    Scenario(
        "redis",
        "POST redis",
        "redis",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "redis"),),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis",),
    ),
    Scenario(
        "redis-log",
        "POST redis, defaults (access log on)",
        "redis, defaults (access log on)",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "redis"), *_ACCESS_LOG_ON, ("COUNTER_LOG_FORMAT", "text")),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis",),
        only_concurrency=64,
        soak=False,
        log_off="redis",
    ),
    Scenario(
        "redis-log-json",
        "POST redis, defaults, JSON log",
        "redis, access log on, JSON lines",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "redis"), *_ACCESS_LOG_ON, ("COUNTER_LOG_FORMAT", "json")),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis",),
        only_concurrency=64,
        soak=False,
        log_off="redis",
    ),
    Scenario(
        "redis-framework",
        "POST redis, framework path",
        "redis, COUNTER_FAST_PATH=false",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "redis"), ("COUNTER_FAST_PATH", "false")),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis",),
        only_concurrency=64,
        soak=False,
    ),
    Scenario(
        "redis-granian",
        "POST redis, granian",
        "redis, COUNTER_SERVER=granian",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "redis"), ("COUNTER_SERVER", "granian")),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis", "granian"),
        server="granian",
        settings=("server",),
    ),
    Scenario(
        "redis-2w",
        "POST redis, 2 workers",
        "redis, 2 workers",
        _POST,
        _COUNTER,
        workers=2,
        env=(("COUNTER_BACKEND", "redis"),),
        needs=frozenset({Needs.REDIS}),
        modules=("adapters.redis",),
    ),
    Scenario(
        "configmap",
        "POST configmap, coalescing, no write budget",
        "configmap, coalescing on",
        _POST,
        _COUNTER,
        # No write budget: these two measure what coalescing does; configmap-budget the budget.
        env=(("COUNTER_BACKEND", "configmap"), ("COUNTER_CONFIGMAP_COALESCE", "true"), _NO_BUDGET),
        needs=frozenset({Needs.KUBE}),
        modules=("adapters.configmap", "kube_emulator.__main__"),
        configmap=True,
    ),
    Scenario(
        "configmap-off",
        "POST configmap, no coalescing, no write budget",
        "configmap, coalescing off",
        _POST,
        _COUNTER,
        env=(("COUNTER_BACKEND", "configmap"), ("COUNTER_CONFIGMAP_COALESCE", "false"), _NO_BUDGET),
        needs=frozenset({Needs.KUBE}),
        modules=("adapters.configmap", "kube_emulator.__main__"),
        configmap=True,
    ),
    Scenario(
        "configmap-budget",
        f"POST configmap, {BUDGET} writes/s budget",
        f"configmap, {BUDGET_VARIABLE}={BUDGET}",
        _POST,
        _COUNTER,
        env=(
            ("COUNTER_BACKEND", "configmap"),
            ("COUNTER_CONFIGMAP_COALESCE", "true"),
            (BUDGET_VARIABLE, str(BUDGET)),
        ),
        needs=frozenset({Needs.KUBE}),
        modules=("adapters.configmap", "kube_emulator.__main__"),
        configmap=True,
        settings=("configmap_max_writes_per_second",),
        only_concurrency=64,
        soak=False,
    ),
    Scenario(
        "peer",
        "peer: FastAPI + redis-py INCR",
        "peer FastAPI + redis-py",
        _POST,
        _COUNTER,
        kind=Kind.PEER,
        needs=frozenset({Needs.REDIS}),
        modules=("fastapi", "redis.asyncio"),
    ),
)
NAMES = tuple(s.name for s in CATALOGUE)


def select(names: str | None) -> list[Scenario]:
    if not names:
        return list(CATALOGUE)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [s for s in CATALOGUE if s.name in wanted]
