"""What a run prints and saves: the table, memory, targets, JSON and the throughput plot."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.model import Run, ScenarioResult
from bench.targets import Target

COLUMNS = (
    ("scenario", "<"),
    ("workers", ">"),
    ("conc", ">"),
    ("req/s", ">"),
    ("p50 ms", ">"),
    ("p99 ms", ">"),
    ("p99/p50", ">"),
    ("errors", ">"),
    ("lost", ">"),
    ("API writes/incr", ">"),
    ("server CPU", ">"),
    ("wrk CPU", ">"),
    ("store CPU", ">"),
)


def table(results: Sequence[ScenarioResult]) -> str:
    rows = [_row(result, run) for result in results for run in result.measured()]
    lines = _format(rows)
    problems = [
        f"  {r.scenario.name}: {'skipped' if r.skipped else 'stopped'}: {_first_line(r.skipped or r.error)}"
        for r in results
        if r.skipped or r.error
    ]
    notes = [f"  {r.scenario.name}: {note}" for r in results for note in r.notes]
    if problems:
        lines += ["", "Not measured:", *problems]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def _row(result: ScenarioResult, run: Run) -> tuple[str, ...]:
    ratio = run.p99_ms / run.p50_ms if run.p50_ms > 0 else 0.0
    writes = run.writes_per_increment
    return (
        result.scenario.label,
        str(result.scenario.workers),
        str(run.concurrency),
        f"{run.rps:,.0f}",
        f"{run.p50_ms:.2f}",
        f"{run.p99_ms:.2f}",
        f"{ratio:.1f}",
        str(run.errors) + ("" if run.complete else "*"),
        "-" if run.lost is None else str(run.lost),
        "-" if writes is None else f"{writes:.3f}",
        f"{run.server_cpu_share:.0%}",
        f"{run.load_cpu_share:.0%}",
        "-" if run.store_cpu_share is None else f"{run.store_cpu_share:.0%}",
    )


def _format(rows: Sequence[tuple[str, ...]]) -> list[str]:
    headers = tuple(name for name, _ in COLUMNS)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{cell:{align}{width}}" for cell, (_, align), width in zip(cells, COLUMNS, widths, strict=True)
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def memory_table(results: Sequence[ScenarioResult]) -> str:
    lines = []
    for result in results:
        memory = result.memory
        if memory is None:
            continue
        half = memory.soak_requests // 2
        for worker in memory.workers:
            growth = worker.growth_pct
            lines.append(
                f"  {result.scenario.label:<34} pid {worker.pid:<7}"
                f" after warm-up {_mib(worker.after_warmup_kib)}"
                f"  after {half // 1000}k {_mib(worker.after_half_kib)}"
                f"  after {2 * half // 1000}k {_mib(worker.after_soak_kib)}"
                f"  growth {'-' if growth is None else f'{growth:+.2f}%'}"
            )
        if memory.note:
            lines.append(f"  {result.scenario.label:<34} {memory.note}")
    if not lines:
        return ""
    return "\n".join(
        ["RSS per worker (VmRSS) after warm-up and after N requests answered (warm-up included):", *lines]
    )


def _mib(kib: int | None) -> str:
    return "    -    " if kib is None else f"{kib / 1024:6.1f} MiB"


def targets_text(targets: Sequence[Target]) -> str:
    width = max((len(t.goal) for t in targets), default=0)
    lines = ["Targets (ratios from this run, 1 worker, 64 in flight):"]
    lines += [f"  {t.status:<8} {t.goal:<{width}}  {t.measured}" for t in targets]
    return "\n".join(lines)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --- files ----------------------------------------------------------------------------------------


def to_json(
    results: Sequence[ScenarioResult], targets: Sequence[Target], meta: dict[str, Any]
) -> dict[str, Any]:
    scenarios = []
    for result in results:
        entry = dataclasses.asdict(result)
        entry["scenario"]["needs"] = sorted(result.scenario.needs)
        entry["scenario"]["env"] = dict(result.scenario.env)
        for run_json, run in zip(entry["runs"], result.runs, strict=True):
            run_json["errors"] = run.errors
            run_json["writes_per_increment"] = run.writes_per_increment
        if result.memory is not None:
            for worker_json, worker in zip(entry["memory"]["workers"], result.memory.workers, strict=True):
                worker_json["growth_pct"] = worker.growth_pct
        scenarios.append(entry)
    return {"meta": meta, "scenarios": scenarios, "targets": [dataclasses.asdict(t) for t in targets]}


def save_json(document: dict[str, Any], directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"results-{stamp}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    shutil.copyfile(path, directory / "latest.json")
    return path


def save_plot(results: Sequence[ScenarioResult], path: Path, title: str) -> Path | None:
    """Requests/s against concurrency, one line per scenario (log scales: ConfigMap without
    coalescing is two orders of magnitude below the rest)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [r for r in results if r.measured()]
    if not drawn:
        return None
    figure, axes = plt.subplots(figsize=(11, 5.5), layout="constrained")
    for result in drawn:
        runs = sorted(result.measured(), key=lambda r: r.concurrency)
        label = f"{result.scenario.store} ({result.scenario.workers}w)"
        style = "--" if result.scenario.method == "GET" else "-"
        lone = len(runs) == 1  # a single point (access log on) would hide behind a line's marker
        axes.plot(
            [r.concurrency for r in runs],
            [r.rps for r in runs],
            style,
            marker="D" if lone else "o",
            markersize=9 if lone else 6,
            fillstyle="none" if lone else "full",
            label=label,
        )
    concurrencies = sorted({r.concurrency for result in drawn for r in result.measured()})
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(concurrencies, [str(c) for c in concurrencies])
    axes.set_xlabel("requests in flight (wrk connections)")
    axes.set_ylabel("requests/s")
    axes.set_title(title)
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
