"""Export from each real store, import into each other one: the same counts, rules, expiries and
admin key hashes; a second import changes nothing. SQLite on files in a tmp dir, our own
redis-server on a free port, the ConfigMap store on the emulated Kubernetes API; and the real
`counter` console script, `counter export | counter import -`, as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from adapters.redis import open_redis_repository
from adapters.sqlite import open_sqlite_repository
from domain.errors import StepOutOfRangeError, StoreFullError
from domain.model import INT64_MAX, INT64_MIN, Counter, CounterId
from domain.ports import CounterRepository
from domain.restore import TIME_RESOLUTION, RestoreOutcome
from domain.rules import Rules, hash_admin_key
from domain.services import CounterService, ImportFailedError
from domain.transfer import dump_line, parse_line

if TYPE_CHECKING:
    from tests.integration.configmap_fixtures import KubeTarget, OpenRepo

pytestmark = pytest.mark.integration

STORES = ("sqlite", "redis", "configmap")
PAIRS = [(source, target) for source in STORES for target in STORES if source != target]
COUNTER_SCRIPT = Path(sys.executable).parent / "counter"
TIMEOUT_SECONDS = 60
SEEDED = 17  # the counters `seed` makes

Open = Callable[[str], Awaitable[CounterRepository]]


@pytest.fixture
async def open_store(
    tmp_path: Path, redis_url: str, kube: KubeTarget, open_repo: OpenRepo
) -> AsyncIterator[Open]:
    """`await open_store(kind)`: a new, empty store of that kind, closed at the end of the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def opener(kind: str) -> CounterRepository:
            unique = uuid.uuid4().hex[:10]
            if kind == "sqlite":
                manager: Any = open_sqlite_repository(tmp_path / f"{unique}.db")
            elif kind == "redis":
                manager = open_redis_repository(redis_url, f"test:{unique}:")
            else:
                return await open_repo(f"counter-export-{unique}")
            repository: CounterRepository = await stack.enter_async_context(
                contextlib.asynccontextmanager(lambda: manager)()
            )
            return repository

        yield opener


async def seed(repository: CounterRepository) -> None:
    """Counters of every kind: plain ones made by hits, the range's ends, names of every form,
    counters with rules, an expiry and an admin key, and one noted by hand from a dead service."""
    for key, by in (("visits", 41), ("a", 1), ("min", INT64_MIN), ("max", INT64_MAX), ("-dash", -3)):
        await repository.increment(CounterId.default(key), by)
    for namespace in ("blog", "x_y.z-1", "abc"):
        for i in range(3):
            await repository.increment(CounterId(namespace, f"page.{i}"), i + 1)
    await repository.create(
        CounterId("blog", "ruled"), 5, Rules(min_step=0, max_step=1, resettable=True), None
    )
    await repository.create(CounterId("blog", "keyed"), 0, Rules(ttl_seconds=3600), hash_admin_key("k"))
    await repository.restore(
        Counter(CounterId("old", "countapi"), 123456, updated_at=datetime(2023, 6, 1, tzinfo=UTC))
    )


async def export_lines(repository: CounterRepository) -> list[str]:
    return [dump_line(counter) async for counter in CounterService(repository).export()]


def assert_same_counters(exported: list[str], imported: list[str]) -> None:
    """Line by line the same counter: value, rules, admin key hash; times within the coarsest
    clock of a store; the version."""
    assert len(imported) == len(exported) == SEEDED
    for before_line, after_line in zip(exported, imported, strict=True):
        before, _ = parse_line(before_line)
        after, _ = parse_line(after_line)
        assert (after.id, after.count, after.rules, after.admin_key_hash) == (
            before.id,
            before.count,
            before.rules,
            before.admin_key_hash,
        )
        for field in ("created_at", "updated_at", "expires_at"):
            first, second = getattr(before, field), getattr(after, field)
            assert (first is None) == (second is None), field
            if first is not None:
                assert abs(first - second) < TIME_RESOLUTION, field
        assert after.version == before.version


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
async def test_an_export_imported_into_another_store_is_the_same_and_twice_is_unchanged(
    open_store: Open, source_kind: str, target_kind: str
) -> None:
    source = await open_store(source_kind)
    await seed(source)
    exported = await export_lines(source)
    target = await open_store(target_kind)
    first = await CounterService(target).import_(exported)
    assert (first.outcomes, first.error) == ({RestoreOutcome.WRITTEN: SEEDED}, None)
    assert_same_counters(exported, await export_lines(target))
    second = await CounterService(target).import_(exported)
    assert second.outcomes == {RestoreOutcome.UNCHANGED: SEEDED}
    # And back: what the target exports imports into the source as what it already holds.
    back = await CounterService(source).import_(await export_lines(target))
    assert back.outcomes == {RestoreOutcome.UNCHANGED: SEEDED}


@pytest.mark.parametrize("kind", STORES)
async def test_rules_and_expiry_hold_after_the_move(open_store: Open, kind: str) -> None:
    source = await open_store("sqlite" if kind != "sqlite" else "redis")
    await seed(source)
    target = await open_store(kind)
    await CounterService(target).import_(await export_lines(source))
    ruled = await target.get(CounterId("blog", "ruled"))
    assert ruled.rules == Rules(min_step=0, max_step=1, resettable=True)
    keyed = await target.get(CounterId("blog", "keyed"))
    original = await source.get(CounterId("blog", "keyed"))
    assert keyed.expires_at is not None
    assert original.expires_at is not None
    assert abs(keyed.expires_at - original.expires_at) < TIME_RESOLUTION
    assert keyed.admin_key_hash == hash_admin_key("k")
    with pytest.raises(StepOutOfRangeError):
        await target.increment(CounterId("blog", "ruled"), 2)


async def test_a_conflict_is_left_alone_then_replaced(open_store: Open) -> None:
    for kind in STORES:
        store = await open_store(kind)
        await store.increment(CounterId.default("visits"), 2)
        line = '{"key": "visits", "value": 1234, "updated_at": "2024-05-01T00:00:00Z", "source": "countapi"}'
        report = await CounterService(store).import_([line])
        assert report.outcomes == {RestoreOutcome.CONFLICT: 1}, kind
        assert (await store.get(CounterId.default("visits"))).count == 2
        report = await CounterService(store).import_([line], replace=True)
        assert report.outcomes == {RestoreOutcome.REPLACED: 1}, kind
        read = await store.get(CounterId.default("visits"))
        assert (read.count, read.updated_at) == (1234, datetime(2024, 5, 1, tzinfo=UTC))


# --- the real console script -------------------------------------------------------------------


def store_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTER_")}
    return {**env, **variables}


def test_counter_export_piped_into_counter_import(tmp_path: Path, redis_url: str) -> None:
    """SQLite -> Redis through a pipe, then Redis -> a file, then that file into a second SQLite
    file, twice: the second import changes nothing, and the exit statuses say so."""
    sqlite_env = store_env(COUNTER_BACKEND="sqlite", COUNTER_SQLITE_PATH=str(tmp_path / "a.db"))
    redis_env = store_env(COUNTER_BACKEND="redis", COUNTER_REDIS_URL=redis_url, COUNTER_REDIS_PREFIX="pipe:")
    seeded = "\n".join(
        [
            '{"key": "visits", "value": 1234, "updated_at": "2024-05-01T00:00:00Z", "source": "countapi"}',
            '{"namespace": "blog", "key": "hits", "value": -5, "rules": {"ttl_seconds": 86400}}',
            (
                '{"namespace": "blog", "key": "ruled", "value": 9, "rules": {"max_step": 1},'
                f' "admin_key_hash": "{hash_admin_key("k")}", "created_at": "2020-01-01T00:00:00Z"}}'
            ),
        ]
    )
    run = subprocess.run
    seeded_run = run(
        [COUNTER_SCRIPT, "import", "-"], input=seeded, env=sqlite_env, capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert seeded_run.returncode == 0, seeded_run.stderr
    assert "3 written" in seeded_run.stderr
    with subprocess.Popen(
        [COUNTER_SCRIPT, "export"], env=sqlite_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as exporter:
        importer = run(
            [COUNTER_SCRIPT, "import", "-"], stdin=exporter.stdout, env=redis_env, capture_output=True,
            text=True, timeout=TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        _, export_err = exporter.communicate(timeout=TIMEOUT_SECONDS)
    assert exporter.returncode == 0, export_err
    assert b"exported 3 counters" in export_err
    assert importer.returncode == 0, importer.stderr
    assert "read 3 lines" in importer.stderr
    assert "3 written, 0 replaced, 0 unchanged, 0 conflicts, 0 expired (skipped)" in importer.stderr

    backup = tmp_path / "backup.jsonl"
    out = run(
        [COUNTER_SCRIPT, "export", "--output", str(backup)], env=redis_env, capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = backup.read_text().splitlines()
    assert [parse_line(line)[0].id for line in lines] == [
        CounterId("blog", "hits"),
        CounterId("blog", "ruled"),
        CounterId.default("visits"),
    ]
    visits, _ = parse_line(lines[2])
    assert (visits.count, visits.updated_at) == (1234, datetime(2024, 5, 1, tzinfo=UTC))

    other_env = store_env(COUNTER_BACKEND="sqlite", COUNTER_SQLITE_PATH=str(tmp_path / "b.db"))
    for expected in ("3 written", "0 written, 0 replaced, 3 unchanged"):
        restored = run(
            [COUNTER_SCRIPT, "import", str(backup)], env=other_env, capture_output=True, text=True,
            timeout=TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert expected in restored.stderr

    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        lines[0] + "\n" + '{"key": "x", "value": 1, "updated_at": "May 1st"}\n' + lines[1] + "\n"
    )
    failed = run(
        [COUNTER_SCRIPT, "import", str(broken)], env=store_env(
            COUNTER_BACKEND="sqlite", COUNTER_SQLITE_PATH=str(tmp_path / "c.db")
        ), capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert "line 2: 'updated_at' must be an RFC 3339 time" in failed.stderr
    assert "1 written" in failed.stderr


def test_an_export_that_fails_leaves_no_file(tmp_path: Path) -> None:
    """The store cannot be opened: no backup file appears (and nothing half-written would)."""
    target = tmp_path / "backup.jsonl"
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    result = subprocess.run(
        [COUNTER_SCRIPT, "export", "--output", str(target)],
        env=store_env(COUNTER_BACKEND="sqlite", COUNTER_SQLITE_PATH=str(blocked / "x.db")),
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert result.returncode == 3
    assert "cannot open the sqlite store" in result.stderr
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [blocked]


async def test_expired_lines_are_skipped(open_store: Open) -> None:
    gone = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    line = f'{{"key": "old", "value": 1, "rules": {{"ttl_seconds": 60}}, "expires_at": "{gone}"}}'
    for kind in STORES:
        store = await open_store(kind)
        report = await CounterService(store).import_([line])
        assert report.outcomes == {RestoreOutcome.EXPIRED: 1}
        assert (await store.get(CounterId.default("old"))).created_at is None


async def test_redis_lists_the_namespaces_of_its_own_prefix_only(redis_url: str) -> None:
    """SCAN's pattern escapes the prefix's glob characters, and a key of another prefix, or a
    counter key that looks like an index, is no namespace."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(
                contextlib.asynccontextmanager(open_redis_repository)(redis_url, prefix)
            )
            for prefix in ("t*[x]?:", "tz[x]a:", "t*[x]?:ns:")
        ]
        glob, lookalike, nested = opened
        await glob.increment(CounterId("blog", "a"), 1)
        await glob.increment(CounterId("blog", "names"), 1)  # key `...ns:blog:c:names`
        await glob.increment(CounterId.default("a"), 1)
        await lookalike.increment(CounterId("other", "a"), 1)
        await nested.increment(CounterId("deep", "a"), 1)  # `t*[x]?:ns:ns:deep:names`
        assert await glob.namespaces(None, 10) == ["blog", "default"]
        assert await lookalike.namespaces(None, 10) == ["other"]


async def test_a_full_configmap_stops_the_import_after_the_lines_that_fit(open_store: Open) -> None:
    """Lines go in windows of 256, one ConfigMap write each; the first line refused for room
    stops the import, and every line before it is there."""
    store = await open_store("configmap")
    lines = [json.dumps({"namespace": "many", "key": f"counter-{i:05d}", "value": i}) for i in range(9000)]
    with pytest.raises(ImportFailedError) as raised:
        await CounterService(store).import_(lines)
    failed = raised.value
    assert isinstance(failed.cause, StoreFullError)
    assert 3000 < failed.number < 9000
    assert failed.report.count(RestoreOutcome.WRITTEN) == failed.number - 1
    stored = [c.key async for c in CounterService(store).export("many")]
    assert stored[: failed.number - 1] == [f"counter-{i:05d}" for i in range(failed.number - 1)]
