"""Export and import on the in-memory store: every counter out, idempotent in, a malformed line
stopping at its number, and the command line (`counter export`, `counter import`) through main."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys

import pytest
from dependency_injector import providers

from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId
from domain.restore import RestoreOutcome
from domain.rules import Rules, hash_admin_key
from domain.services import IMPORT_WINDOW, MAX_PAGE_SIZE, CounterService
from domain.transfer import dump_line
from entrypoints import cli, transfer
from entrypoints.container import build_container
from entrypoints.settings import Settings


async def filled(store: InMemoryCounterRepository) -> CounterService:
    service = CounterService(store)
    for namespace in ("zz", "default", "aa"):
        for i in range(3):
            await service.increment(CounterId(namespace, f"k{i}"), i + 1)
    await service.create(CounterId("aa", "ruled"), 7, Rules(max_step=1, ttl_seconds=3600))
    return service


async def test_export_walks_every_namespace_and_page() -> None:
    service = CounterService(InMemoryCounterRepository())
    names = [CounterId(f"ns{n:04d}", f"k{i:04d}") for n in range(MAX_PAGE_SIZE + 2) for i in range(1)]
    names += [CounterId("big", f"k{i:04d}") for i in range(MAX_PAGE_SIZE + 5)]
    for name in names:
        await service.increment(name, 1)
    exported = [c.id async for c in service.export()]
    assert exported == sorted(names)
    assert [c.key async for c in service.export("big")] == [f"k{i:04d}" for i in range(MAX_PAGE_SIZE + 5)]


async def test_an_export_imported_elsewhere_is_the_same_and_twice_is_unchanged() -> None:
    source = await filled(InMemoryCounterRepository())
    lines = [dump_line(c) async for c in source.export()]
    target = CounterService(InMemoryCounterRepository())
    first = await target.import_(lines)
    assert (first.count(RestoreOutcome.WRITTEN), first.error) == (10, None)
    assert [dump_line(c) async for c in target.export()] == lines
    second = await target.import_(lines)
    assert second.outcomes == {RestoreOutcome.UNCHANGED: 10}
    assert [dump_line(c) async for c in target.export()] == lines


async def test_a_malformed_line_stops_the_import_at_its_number() -> None:
    store = InMemoryCounterRepository()
    service = CounterService(store)
    lines = [json.dumps({"key": f"c{i}", "value": i}) for i in range(IMPORT_WINDOW + 10)]
    lines.insert(IMPORT_WINDOW + 5, '{"key": "broken", "value": "x"}')
    lines.insert(3, "   ")  # blank lines are skipped, but counted
    report = await service.import_(lines)
    bad = IMPORT_WINDOW + 7  # 1-based, after the blank line
    assert report.error == f"line {bad}: 'value' must be an integer, not 'x'"
    assert report.count(RestoreOutcome.WRITTEN) == IMPORT_WINDOW + 5
    assert (await store.get(CounterId.default(f"c{IMPORT_WINDOW + 4}"))).count == IMPORT_WINDOW + 4
    assert (await store.get(CounterId.default(f"c{IMPORT_WINDOW + 5}"))).created_at is None
    assert len([c async for c in service.export()]) == IMPORT_WINDOW + 5


async def test_lines_of_one_counter_apply_in_their_order() -> None:
    service = CounterService(InMemoryCounterRepository())
    lines = [json.dumps({"key": "c", "value": v, "updated_at": f"2024-01-0{v}T00:00:00Z"}) for v in (1, 2)]
    numbers: list[tuple[int, RestoreOutcome]] = []
    report = await service.import_(lines, each=lambda n, r, _: numbers.append((n, r.outcome)))
    assert numbers == [(1, RestoreOutcome.WRITTEN), (2, RestoreOutcome.CONFLICT)]
    assert (await service.get(CounterId.default("c"))).count == 1
    report = await service.import_(lines, replace=True)
    assert report.outcomes == {RestoreOutcome.UNCHANGED: 1, RestoreOutcome.REPLACED: 1}
    assert (await service.get(CounterId.default("c"))).count == 2


async def test_a_dry_run_writes_nothing_and_says_what_would_happen() -> None:
    store = InMemoryCounterRepository()
    service = CounterService(store)
    await service.increment(CounterId.default("there"), 5)
    lines = ['{"key": "there", "value": 1}', '{"key": "new", "value": 2}']
    report = await service.import_(lines, dry_run=True)
    assert report.outcomes == {RestoreOutcome.CONFLICT: 1, RestoreOutcome.WRITTEN: 1}
    assert [c.key async for c in service.export()] == ["there"]


# --- the command line -----------------------------------------------------------------------


def stdin_of(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_import_through_main_reports_a_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COUNTER_BACKEND", "memory")
    stdin_of(monkeypatch, '{"key": "a", "value": 1}\n{"key": "b", "value": 2, "source": "abacus"}\n')
    assert cli.main(["import", "-"]) == 0
    err = capsys.readouterr().err
    assert "read 2 lines" in err
    assert "2 written, 0 replaced, 0 unchanged, 0 conflicts, 0 expired (skipped)" in err


def test_progress_goes_to_stderr_and_a_byte_order_mark_is_no_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COUNTER_BACKEND", "memory")
    monkeypatch.setattr(transfer, "PROGRESS_LINES", 2)
    stdin_of(monkeypatch, "\ufeff" + "".join(f'{{"key": "k{i}", "value": {i}}}\r\n' for i in range(5)))
    assert cli.main(["import", "-"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "at line 2: 2 written" in err
    assert "at line 4: 4 written" in err
    assert "read 5 lines" in err


def test_a_malformed_line_exits_non_zero_with_its_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COUNTER_BACKEND", "memory")
    stdin_of(monkeypatch, '{"key": "a", "value": 1}\n{"key": "b"}\n{"key": "c", "value": 3}\n')
    assert cli.main(["import", "-"]) == transfer.EXIT_MALFORMED
    err = capsys.readouterr().err
    assert "line 2: 'value' is required; the lines before it were applied, none after it" in err
    assert "1 written" in err


def test_a_file_that_cannot_be_read_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COUNTER_BACKEND", "memory")
    assert cli.main(["import", "/nonexistent/counters.jsonl"]) == transfer.EXIT_MALFORMED
    assert "cannot read /nonexistent/counters.jsonl: No such file or directory" in capsys.readouterr().err


def test_an_invalid_namespace_is_refused_before_the_store_opens(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["export", "--namespace", "no/slash"])
    assert exited.value.code == 2
    assert "argument --namespace: the counter namespace 'no/slash' is invalid" in capsys.readouterr().err


def test_both_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command, options in (("export", ("--namespace", "--output")), ("import", ("--replace", "--dry-run"))):
        with pytest.raises(SystemExit) as exited:
            cli.main([command, "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert all(option in out for option in options)
    assert "importing twice changes nothing" in " ".join(out.split())


def run(store: InMemoryCounterRepository, *argv: str) -> int:
    """A command on `store`: the container's store overridden, as tests do for the app."""
    settings = Settings(backend="memory")
    container = build_container(settings)
    container.repository.override(providers.Object(store))
    args = cli.build_parser().parse_args(argv)
    assert isinstance(args, argparse.Namespace)
    return transfer.run(args, settings, container)


async def seed(store: InMemoryCounterRepository) -> None:
    await filled(store)
    await store.create(CounterId("aa", "keyed"), 1, Rules(), hash_admin_key("k"))


def test_export_then_import_then_again_through_the_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = InMemoryCounterRepository(), InMemoryCounterRepository()
    asyncio.run(seed(source))
    assert run(source, "export") == 0
    out, err = capsys.readouterr()
    assert "exported 11 counters" in err
    assert len(out.splitlines()) == 11
    stdin_of(monkeypatch, out)
    assert run(target, "import", "-") == 0
    assert "11 written" in capsys.readouterr().err
    assert run(target, "export", "--namespace", "aa") == 0
    assert capsys.readouterr().out.splitlines() == [line for line in out.splitlines() if '"aa"' in line]
    stdin_of(monkeypatch, out)
    assert run(target, "import", "-") == 0
    assert "0 written, 0 replaced, 11 unchanged" in capsys.readouterr().err


def test_conflicts_are_named_and_exit_4_unless_replaced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = InMemoryCounterRepository()
    asyncio.run(store.increment(CounterId("blog", "visits"), 5))
    line = '{"namespace": "blog", "key": "visits", "value": 9}\n'
    stdin_of(monkeypatch, line)
    assert run(store, "import", "-") == transfer.EXIT_CONFLICTS
    err = capsys.readouterr().err
    assert "line 1: counter 'blog/visits' exists with another state (value 5); left alone" in err
    stdin_of(monkeypatch, line)
    assert run(store, "import", "-", "--replace") == 0
    assert "1 replaced" in capsys.readouterr().err
    assert asyncio.run(store.get(CounterId("blog", "visits"))).count == 9
