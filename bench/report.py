"""What a run prints and saves: the table, memory, targets, JSON and the throughput plot."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.model import Kind, Run, ScenarioResult
from bench.targets import TARGET_CONCURRENCY, Target

COLUMNS = (
    ("scenario", "<"),
    ("workers", ">"),
    ("conc", ">"),
    ("req/s", ">"),
    ("x ceiling", ">"),
    ("p50 ms", ">"),
    ("p99 ms", ">"),
    ("p99/p50", ">"),
    ("errors", ">"),
    ("lost", ">"),
    ("API writes/incr", ">"),
    ("API writes/s", ">"),
    ("server CPU", ">"),
    ("wrk CPU", ">"),
    ("store CPU", ">"),
)
VS_BASELINE_COLUMN = ("x baseline", ">")  # only when the run has a baseline


def table(results: Sequence[ScenarioResult]) -> str:
    """One row per scenario and concurrency; with --baseline, the baseline's row right below the
    one of the code under test, which carries the ratio."""
    compared = any(r.baseline is not None for r in results)
    columns = (*COLUMNS, VS_BASELINE_COLUMN) if compared else COLUMNS
    ceilings = _ceilings(results)
    rows = []
    for result in results:
        baseline = result.baseline
        for run in result.measured():
            ratio = result.comparison(run.concurrency)
            rows.append(
                _row(result, run, ceilings) + ((f"{ratio.ratio:.2f}" if ratio else "-",) if compared else ())
            )
            base = None if baseline is None else baseline.at(run.concurrency)
            if baseline is not None and base is not None:
                rows.append((*_row(baseline, base, ceilings), ""))
        if baseline is not None:
            done = {run.concurrency for run in result.measured()}
            rows += [
                (*_row(baseline, b, ceilings), "") for b in baseline.measured() if b.concurrency not in done
            ]
    lines = _format(rows, columns)
    everything = with_baselines(results)
    problems = [
        f"  {_name(r)}: {'skipped' if r.skipped else 'stopped'}: {_first_line(r.skipped or r.error)}"
        for r in everything
        if r.skipped or r.error
    ]
    notes = [f"  {_name(r)}: {note}" for r in everything for note in r.notes]
    # The targets check the code under test; an inexact baseline is worth a note.
    notes += [
        f"  {_name(r)}: {sum(abs(run.lost or 0) for run in r.runs)} increments off (2xx != counter increase)"
        for r in everything
        if r.variant and any(run.lost for run in r.runs)
    ]
    if problems:
        lines += ["", "Not measured:", *problems]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def with_baselines(results: Sequence[ScenarioResult]) -> list[ScenarioResult]:
    """Each result followed by that of the same scenario on the baseline's code, if any."""
    return [r for result in results for r in (result, result.baseline) if r is not None]


def _name(result: ScenarioResult) -> str:
    name = result.scenario.name
    return f"{name} [baseline {result.variant}]" if result.variant else name


def _label(result: ScenarioResult) -> str:
    label = result.scenario.label
    return f"{label}, baseline {result.variant}" if result.variant else label


def _ceilings(results: Sequence[ScenarioResult]) -> dict[str, ScenarioResult]:
    """The ceiling of each server (uvicorn, granian) measured in this run."""
    return {r.scenario.server: r for r in results if r.scenario.kind is Kind.CEILING and r.measured()}


def ceiling_ratio(result: ScenarioResult, run: Run, ceilings: Mapping[str, ScenarioResult]) -> float | None:
    """Requests/s over those of the bare app on the same server at the same concurrency."""
    ceiling = ceilings.get(result.scenario.server)
    reference = None if ceiling is None else ceiling.at(run.concurrency)
    return None if reference is None or reference.rps <= 0 else run.rps / reference.rps


def _row(result: ScenarioResult, run: Run, ceilings: Mapping[str, ScenarioResult]) -> tuple[str, ...]:
    ratio = run.p99_ms / run.p50_ms if run.p50_ms > 0 else 0.0
    writes = run.writes_per_increment
    per_second = run.writes_per_second
    of_ceiling = ceiling_ratio(result, run, ceilings)
    return (
        _label(result),
        str(result.scenario.workers),
        str(run.concurrency),
        f"{run.rps:,.0f}",
        "-" if of_ceiling is None else f"{of_ceiling:.2f}",
        f"{run.p50_ms:.2f}",
        f"{run.p99_ms:.2f}",
        f"{ratio:.1f}",
        str(run.errors) + ("" if run.complete else "*"),
        "n/a" if not result.scenario.checks_counter else "-" if run.lost is None else str(run.lost),
        "-" if writes is None else f"{writes:.3f}",
        "-" if per_second is None else f"{per_second:.1f}",
        f"{run.server_cpu_share:.0%}",
        f"{run.load_cpu_share:.0%}",
        "-" if run.store_cpu_share is None else f"{run.store_cpu_share:.0%}",
    )


def _format(rows: Sequence[tuple[str, ...]], columns: Sequence[tuple[str, str]] = COLUMNS) -> list[str]:
    headers = tuple(name for name, _ in columns)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{cell:{align}{width}}" for cell, (_, align), width in zip(cells, columns, widths, strict=True)
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def defaults_text(results: Sequence[ScenarioResult], concurrency: int = TARGET_CONCURRENCY) -> str:
    """Each scenario with the defaults (access log on) against the same one with the access log
    off, from the same run."""
    by_name = {r.scenario.name: r for r in results}
    lines = []
    for result in results:
        off_name = result.scenario.log_off
        if off_name is None:
            continue
        off = by_name.get(off_name)
        run = result.at(concurrency)
        base = None if off is None else off.at(concurrency)
        fmt = result.scenario.env_value("COUNTER_LOG_FORMAT") or "text"
        name = f"{result.scenario.name} ({fmt} lines)"
        if run is None or base is None or base.rps <= 0:
            why = _first_line(result.skipped or result.error) or (
                f"{off_name} not in this run"
                if off is None
                else f"{off_name}: {_first_line(off.skipped or off.error) or 'not measured'}"
            )
            lines.append(f"  {name}: not compared: {why or 'not measured'}")
            continue
        lines.append(
            f"  {name} @{concurrency}: {run.rps / base.rps:.2f} x {off_name} with the access log off"
            f" ({run.rps:,.0f} / {base.rps:,.0f} req/s; p50 {run.p50_ms:.2f} / {base.p50_ms:.2f} ms,"
            f" server CPU {run.server_cpu_share:.0%} / {base.server_cpu_share:.0%})"
        )
    if not lines:
        return ""
    return "\n".join(
        ["The defaults (access log on, log level info) against the access log off, same run:", *lines]
    )


def baseline_text(results: Sequence[ScenarioResult], concurrency: int = TARGET_CONCURRENCY) -> str:
    """One line per scenario run against the baseline: the ratio at `concurrency` (else at the
    highest concurrency both measured), then the pairs and the other concurrencies."""
    lines = []
    for result in results:
        baseline = result.baseline
        if baseline is None:
            continue
        scenario = result.scenario
        name = f"{scenario.name} {scenario.method} {scenario.path}"
        comparisons = result.comparisons()
        if not comparisons:
            why = _first_line(baseline.skipped or baseline.error or result.skipped or result.error)
            lines.append(f"  {name}: not compared with baseline {baseline.variant}: {why or 'not measured'}")
            continue
        main = next((c for c in comparisons if c.concurrency == concurrency), comparisons[-1])
        pairs = ", ".join(f"{r:.2f}" for r in main.pair_ratios)
        others = ", ".join(f"@{c.concurrency} {c.ratio:.2f} x" for c in comparisons if c is not main)
        detail = f"{main.rps:,.0f} / {main.baseline_rps:,.0f} req/s"
        if len(main.pair_ratios) > 1:
            detail += f"; run by run {pairs}"
        if others:
            detail += f"; {others}"
        lines.append(
            f"  {name} @{main.concurrency}: {main.ratio:.2f} x baseline {baseline.variant} ({detail})"
        )
    if not lines:
        return ""
    return "\n".join(
        ["Against the baseline (same run, interleaved; requests/s of this code / the baseline's):", *lines]
    )


def memory_table(results: Sequence[ScenarioResult]) -> str:
    lines = []
    everything = with_baselines(results)
    for result in everything:
        label = _label(result)
        memory = result.memory
        if memory is None:
            continue
        half = memory.soak_requests // 2
        for worker in memory.workers:
            growth = worker.growth_pct
            lines.append(
                f"  {label:<34} pid {worker.pid:<7}"
                f" after warm-up {_mib(worker.after_warmup_kib)}"
                f"  after {half // 1000}k {_mib(worker.after_half_kib)}"
                f"  after {2 * half // 1000}k {_mib(worker.after_soak_kib)}"
                f"  growth {'-' if growth is None else f'{growth:+.2f}%'}"
            )
        if memory.note:
            lines.append(f"  {label:<34} {memory.note}")
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
    return {
        "meta": meta,
        "scenarios": [_result_json(result) for result in results],
        "targets": [dataclasses.asdict(t) for t in targets],
    }


def _result_json(result: ScenarioResult) -> dict[str, Any]:
    entry = dataclasses.asdict(result)
    entry["scenario"]["needs"] = sorted(result.scenario.needs)
    entry["scenario"]["env"] = dict(result.scenario.env)
    for run_json, run in zip(entry["runs"], result.runs, strict=True):
        run_json["errors"] = run.errors
        run_json["writes_per_increment"] = run.writes_per_increment
        run_json["writes_per_second"] = run.writes_per_second
    if result.memory is not None:
        for worker_json, worker in zip(entry["memory"]["workers"], result.memory.workers, strict=True):
            worker_json["growth_pct"] = worker.growth_pct
    if result.baseline is not None:
        entry["baseline"] = _result_json(result.baseline)
        entry["vs_baseline"] = [dataclasses.asdict(c) for c in result.comparisons()]
    return entry


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

    everything = with_baselines(results)
    drawn = [r for r in everything if r.measured()]
    if not drawn:
        return None
    figure, axes = plt.subplots(figsize=(11, 5.5), layout="constrained")
    colours: dict[str, Any] = {}
    for result in drawn:
        runs = sorted(result.measured(), key=lambda r: r.concurrency)
        label = f"{result.scenario.store} ({result.scenario.workers}w)"
        style = (
            "--" if result.scenario.method == "GET" else "-." if result.scenario.kind is Kind.CEILING else "-"
        )
        if result.variant:
            label += f", baseline {result.variant}"
            style = ":"
        lone = len(runs) == 1  # a single point (access log on) would hide behind a line's marker
        (line,) = axes.plot(
            [r.concurrency for r in runs],
            [r.rps for r in runs],
            style,
            marker="D" if lone else "o",
            markersize=9 if lone else 6,
            fillstyle="none" if lone else "full",
            label=label,
            # A baseline has the colour of the scenario it is compared with (drawn just before it).
            color=colours.get(result.scenario.name),
        )
        colours.setdefault(result.scenario.name, line.get_color())
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
