"""The access log of a measured server: its lines counted against the answers, then cut short."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from bench.model import ScenarioResult

_ACCESS_LOGGER = b"counter.access"
_LOG_TAIL_LINES = 100
_LOG_TAIL_BYTES = 256 * 1024  # where those lines are looked for


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _lines_of(path: Path, offset: int, request: bytes) -> int:
    with path.open("rb") as log:
        log.seek(offset)
        data = log.read()
    return sum(1 for line in data.split(b"\n") if _ACCESS_LOGGER in line and request in line)


def count_lines(path: Path, offset: int, request: bytes, answered: int) -> int:
    """The access lines of `request` written after `offset`, once the log has stopped growing (the
    service may write them off the event loop, after the answers) or after 5 s."""
    deadline = time.monotonic() + 5.0
    previous = -1
    while True:
        now = size(path)
        if now == previous or time.monotonic() > deadline:
            count = _lines_of(path, offset, request)
            if count >= answered or time.monotonic() > deadline:
                return count
        previous = now
        time.sleep(0.1)


def note(path: Path, result: ScenarioResult, *, keep: bool) -> str:
    """What the access log of a server holds against what it answered; unless --keep-workdir, the
    log is then cut to its last lines (the work folder is removed after a run that went well, and
    kept with what is left of the logs after one that did not)."""
    runs = [r for r in result.runs if r.log_lines is not None]
    lines = sum(r.log_lines or 0 for r in runs)
    answered = sum(r.answered for r in runs)
    length = size(path)
    total = 0
    with contextlib.suppress(OSError), path.open("rb") as log:
        total = sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))
    note = (
        f"access log: {lines:,} {result.scenario.method} {result.scenario.path} lines for {answered:,}"
        f" answers in {len(runs)} runs; the file has {total:,} lines, {length / 2**20:.1f} MiB ({path.name})"
    )
    if keep:
        return note
    with contextlib.suppress(OSError):
        with path.open("rb") as log:
            log.seek(max(0, length - _LOG_TAIL_BYTES))
            tail = log.read().split(b"\n")[-_LOG_TAIL_LINES - 1 :]
        header = f"[bench] access log cut to its last lines after the scenario ({length:,} bytes)\n"
        path.write_bytes(header.encode() + b"\n".join(tail))
    return note + ", cut to its tail after the scenario (--keep-workdir keeps it whole)"
