"""`counter export` and `counter import`: counters as export lines (domain.transfer), out of and
into the store the COUNTER_* settings select, as `counter serve` would open it.

Progress goes to stderr every PROGRESS_LINES lines or PROGRESS_SECONDS seconds, a summary at the
end; stdout carries only the export itself, so `counter export | counter import -` pipes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Self

from domain.errors import DomainError, InvalidInputError
from domain.model import check_name
from domain.restore import Restored, RestoreOutcome
from domain.services import CounterService, ImportFailedError, ImportReport
from domain.transfer import dump_line
from entrypoints.container import Container, build_container, start_service
from entrypoints.settings import Settings

PROGRESS_LINES = 10_000
PROGRESS_SECONDS = 2.0
SHOWN_CONFLICTS = 20  # then only counted

EXIT_OK = 0
EXIT_MALFORMED = 1
EXIT_STORE = 3
EXIT_CONFLICTS = 4

IMPORT_EPILOG = (
    "Each line is applied in one atomic step, and only where the counter is absent: a counter"
    " that already has the line's state is unchanged (importing twice changes nothing), one that"
    " differs is a conflict, reported and left alone unless --replace. A malformed line stops the"
    " import with its number: the lines before it are applied, none after it. Exit status: 0 all"
    " applied, 1 a malformed line, 2 invalid settings, 3 the store failed (importing again is"
    " safe), 4 conflicts were left alone."
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="write every counter as JSON lines",
        description="Write every live counter of the store the COUNTER_* settings select (value,"
        " times, rules, expiry, admin key hash, version) as one JSON object per line, by"
        " namespace then key.",
    )
    export.add_argument(
        "--namespace", metavar="NS", type=_namespace, help="only the counters of this namespace"
    )
    export.add_argument(
        "--output",
        metavar="FILE",
        default="-",
        help="where to write (default: - for stdout); a file appears only once it is complete",
    )
    imported = commands.add_parser(
        "import",
        help="read counters from JSON lines into the store",
        description="Restore the counters of export lines (from `counter export`, or written by"
        ' hand: {"key": "visits", "value": 1234, "updated_at": "2024-05-01T00:00:00Z",'
        ' "source": "countapi"}) into the store the COUNTER_* settings select.',
        epilog=IMPORT_EPILOG,
    )
    imported.add_argument("file", metavar="FILE", help="the export lines, - for stdin")
    imported.add_argument(
        "--replace", action="store_true", help="overwrite counters that differ instead of leaving them"
    )
    imported.add_argument("--dry-run", action="store_true", help="read the store and report, write nothing")


def _namespace(text: str) -> str:
    try:
        return check_name(text, "namespace")
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace, settings: Settings, container: Container | None = None) -> int:
    """Run `counter export` or `counter import` on the store of `container` (tests override its
    store), by default the one `settings` select."""
    command = export if args.command == "export" else import_
    container = container or build_container(settings)
    return asyncio.run(_with_service(container, settings, lambda service: command(service, args)))


async def _with_service(
    container: Container, settings: Settings, work: Callable[[CounterService], Awaitable[int]]
) -> int:
    try:
        try:
            service = await start_service(container)
        except DomainError as error:
            _say(f"cannot open the {settings.backend} store: {error}")
            return EXIT_STORE
        return await work(service)
    finally:
        shutdown = container.shutdown_resources()
        if shutdown is not None:
            await shutdown


async def export(service: CounterService, args: argparse.Namespace) -> int:
    started = shown = time.monotonic()
    written = 0
    with _Output(args.output) as out:
        try:
            async for counter in service.export(args.namespace):
                out.write(dump_line(counter) + "\n")
                written += 1
                if written % PROGRESS_LINES == 0 or time.monotonic() - shown >= PROGRESS_SECONDS:
                    shown = time.monotonic()
                    _say(f"exported {written} counters")
        except DomainError as error:
            _say(f"export failed after {written} counters: {error}")
            return EXIT_STORE
        out.complete()
    _say(f"exported {written} counters in {time.monotonic() - started:.1f} s")
    return EXIT_OK


async def import_(service: CounterService, args: argparse.Namespace) -> int:
    started = time.monotonic()
    progress = _Progress(started)
    try:
        with _input(args.file) as lines:
            report = await service.import_(
                lines, replace=args.replace, dry_run=args.dry_run, each=progress.seen
            )
    except ImportFailedError as failed:
        _say(f"{failed}; the lines before it were applied, importing again is safe")
        _say(_summary(failed.report, args.dry_run, time.monotonic() - started))
        return EXIT_STORE
    except OSError as error:
        _say(f"cannot read {args.file}: {error.strerror or error}")
        return EXIT_MALFORMED
    if report.error is not None:
        _say(f"{report.error}; the lines before it were applied, none after it")
    _say(_summary(report, args.dry_run, time.monotonic() - started))
    if report.error is not None:
        return EXIT_MALFORMED
    return EXIT_CONFLICTS if report.count(RestoreOutcome.CONFLICT) else EXIT_OK


class _Progress:
    def __init__(self, started: float) -> None:
        self.shown = started
        self.conflicts = 0

    def seen(self, number: int, restored: Restored, report: ImportReport) -> None:
        if restored.outcome is RestoreOutcome.CONFLICT:
            self.conflicts += 1
            if self.conflicts <= SHOWN_CONFLICTS:
                there = restored.counter
                _say(
                    f"line {number}: counter {str(there.id)!r} exists with another state (value"
                    f" {there.count}); left alone (--replace overwrites it)"
                )
        if number % PROGRESS_LINES == 0 or time.monotonic() - self.shown >= PROGRESS_SECONDS:
            self.shown = time.monotonic()
            _say(f"at line {number}: {_counts(report)}")


_LABELS = {
    RestoreOutcome.WRITTEN: "written",
    RestoreOutcome.REPLACED: "replaced",
    RestoreOutcome.UNCHANGED: "unchanged",
    RestoreOutcome.CONFLICT: "conflicts",
    RestoreOutcome.EXPIRED: "expired (skipped)",
}


def _counts(report: ImportReport) -> str:
    return ", ".join(f"{report.count(outcome)} {label}" for outcome, label in _LABELS.items())


def _summary(report: ImportReport, dry_run: bool, seconds: float) -> str:
    would = " (dry run: nothing written; what an import would do)" if dry_run else ""
    return f"read {report.lines} lines in {seconds:.1f} s: {_counts(report)}{would}"


class _Output:
    """stdout, or a temporary file beside FILE renamed to it once `complete`: a backup that
    stopped half-way never looks like a whole one."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.file: IO[str] = sys.stdout
        self.temporary: Path | None = None

    def __enter__(self) -> Self:
        if self.target != "-":
            path = Path(self.target)
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            self.temporary = Path(name)
            self.file = os.fdopen(handle, "w", encoding="utf-8")
        return self

    def write(self, text: str) -> None:
        self.file.write(text)

    def complete(self) -> None:
        self.file.flush()
        if self.temporary is not None:
            self.file.close()
            self.temporary.replace(self.target)
            self.temporary = None

    def __exit__(self, *exc_info: object) -> None:
        if self.temporary is not None:  # not complete
            self.file.close()
            self.temporary.unlink(missing_ok=True)


class _input:  # noqa: N801 - used as a context manager, like open()
    def __init__(self, source: str) -> None:
        self.source = source
        self.file: IO[bytes] | None = None

    def __enter__(self) -> Iterator[str]:
        self.file = sys.stdin.buffer if self.source == "-" else Path(self.source).open("rb")
        # Bytes that are not UTF-8 become U+FFFD, which no field of a valid line holds; a byte
        # order mark (as some editors save) is dropped.
        return (raw.decode("utf-8-sig", errors="replace") for raw in self.file)

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None and self.source != "-":
            self.file.close()


def _say(message: str) -> None:
    sys.stderr.write(f"counter: {message}\n")
    sys.stderr.flush()
