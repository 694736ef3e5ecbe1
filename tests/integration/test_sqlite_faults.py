"""A real `counter serve` on an SQLite file, under load, while the file is locked or cannot be written.

What the service must do: answer 503 with Retry-After within its lock timeout (never a long
wait), count exactly the increments it answered 2xx, serve reads while another process holds
the write lock, report itself not ready while it cannot count, and recover on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import Server, running_server
from tests.integration.sqlite_load import OUTCOME_UNKNOWN, STORE_UNAVAILABLE, Load, running_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOCK_TIMEOUT = 2.0  # COUNTER_SQLITE_LOCK_TIMEOUT_SECONDS, its default
MARGIN = 1.5  # for a loaded machine: a batch in flight, the client, the event loops
HOLD = 3.0  # how long the other process holds the lock

# Another process that takes the write lock, says so, holds it, and lets it go.
LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
connection.execute("BEGIN " + sys.argv[2])
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
connection.execute("ROLLBACK")
print("released", flush=True)
"""


@contextlib.contextmanager
def sqlite_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    db = tmp_path / "data" / "counter.db"
    env = {
        "COUNTER_BACKEND": "sqlite",
        "COUNTER_SQLITE_PATH": str(db),
        "COUNTER_SQLITE_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT),
    }
    with running_server(env, tmp_path / "server.log") as server:
        yield server, db


def stored_count(db: Path, name: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        query = "SELECT count FROM counters WHERE namespace = 'default' AND key = ?"
        row = connection.execute(query, (name,)).fetchone()
    return 0 if row is None else int(row[0])


async def answered_after(load: Load, status: int, moment: float, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if any(a.status == status and a.sent >= moment for a in load.posts):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no POST sent after the moment was answered {status} within {deadline} s")


def check_counted_exactly(server: Server, db: Path, load: Load, name: str) -> int:
    served = httpx.get(f"{server.url}/counters/{name}", timeout=10).json()["count"]
    stored = stored_count(db, name)
    print(load.summary(stored))
    assert {a.status for a in load.posts} <= {200, 503}, load.summary(stored)
    for answer in load.posts:
        if answer.status == 503:
            assert answer.retry_after is not None
            assert answer.problem_type in (STORE_UNAVAILABLE, OUTCOME_UNKNOWN)
    assert served == stored == load.status_count(200)
    return stored


@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
async def test_a_write_lock_held_by_another_process_gives_503_in_time_and_reads_go_on(
    tmp_path: Path, mode: str
) -> None:
    with sqlite_server(tmp_path) as (server, db):
        async with running_load(server.url, "/counters/locked") as load:
            await asyncio.sleep(1.0)
            locker = await asyncio.create_subprocess_exec(
                sys.executable, "-c", LOCKER, str(db), mode, str(HOLD), stdout=subprocess.PIPE
            )
            assert locker.stdout is not None
            assert await locker.stdout.readline() == b"locked\n"
            locked = time.monotonic()
            assert await locker.stdout.readline() == b"released\n"
            released = time.monotonic()
            assert await locker.wait() == 0
            await answered_after(load, 200, released)
            await asyncio.sleep(1.0)
        # Answered while the lock was held (the first moment left out: an answer committed just
        # before the lock was taken may still be on its way).
        during = [a for a in load.posts if locked + 0.1 <= a.answered <= released]
        assert during, "no POST was answered while the lock was held"
        assert all(a.status == 503 and a.problem_type == STORE_UNAVAILABLE for a in during)
        assert max(a.waited for a in load.posts) <= LOCK_TIMEOUT + MARGIN
        reads = [a for a in load.gets if locked <= a.sent and a.answered <= released]
        assert len(reads) >= 3, "reads queued behind the blocked writes"
        assert all(a.status == 200 for a in reads)
        check_counted_exactly(server, db, load, "locked")


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable_files_possible(tmp_path: Path) -> None:
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("making files immutable needs chattr and root")
    probe = tmp_path / "probe"
    probe.touch()
    try:
        chattr("+i", probe)
    except subprocess.CalledProcessError:
        pytest.skip("this file system cannot make files immutable")
    chattr("-i", probe)


async def readiness(server: Server) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(f"{server.url}/health/ready")).status_code


@pytest.mark.usefixtures("immutable_files_possible")
async def test_files_that_cannot_be_written_give_503_not_ready_and_recover(tmp_path: Path) -> None:
    with sqlite_server(tmp_path) as (server, db):
        wal, shm = (db.with_name(db.name + suffix) for suffix in ("-wal", "-shm"))
        files = (wal, db, shm, db.parent)
        async with running_load(server.url, "/counters/frozen") as load:
            await asyncio.sleep(1.0)
            assert await readiness(server) == 200
            try:
                # The WAL first: a transaction in flight when the -shm file becomes immutable
                # would be killed by the kernel (SIGBUS on its mapped memory); once the WAL
                # cannot be written the service tries no more transactions.
                frozen = time.monotonic()
                chattr("+i", wal)
                await answered_after(load, 503, frozen)
                chattr("+i", db, shm, db.parent)
                refused_from = time.monotonic()
                await asyncio.sleep(1.0)
                statuses = [await readiness(server) for _ in range(3)]
                thawed = time.monotonic()
            finally:
                chattr("-i", *files)
            assert statuses == [503, 503, 503]
            await answered_after(load, 200, thawed)
            assert await readiness(server) == 200
            await asyncio.sleep(1.0)
        while_frozen = [a for a in load.posts if a.sent >= refused_from and a.answered <= thawed]
        assert while_frozen, "no POST was sent and answered while the files were immutable"
        assert all(a.status == 503 for a in while_frozen)
        assert max(a.waited for a in load.posts) <= LOCK_TIMEOUT + MARGIN
        check_counted_exactly(server, db, load, "frozen")
