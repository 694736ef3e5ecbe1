"""The metrics directory of a server of several workers, and who is told of a worker's exit."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from entrypoints.observability.multiprocess import MULTIPROC_DIR_VARIABLE, metrics_directory, worker_exited
from entrypoints.uvicorn_server import Supervisor


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_DIR_VARIABLE}
    monkeypatch.setattr(os, "environ", env)
    return env


def test_several_workers_get_a_fresh_directory_removed_at_the_end(environ: dict[str, str]) -> None:
    with metrics_directory(3) as path:
        assert path is not None
        assert environ[MULTIPROC_DIR_VARIABLE] == path
        assert Path(path).is_dir()
        assert list(Path(path).iterdir()) == []
        Path(path, "counter_123.db").write_bytes(b"x")
    assert not Path(path).exists()
    assert MULTIPROC_DIR_VARIABLE not in environ


def test_a_given_directory_is_the_parent_of_each_servers_own(environ: dict[str, str], tmp_path: Path) -> None:
    environ[MULTIPROC_DIR_VARIABLE] = str(tmp_path)
    (tmp_path / "counter_1.db").write_bytes(b"an earlier server's")
    with metrics_directory(2) as first, metrics_directory(2) as second:
        assert first != second
        assert first is not None
        assert second is not None
        assert Path(first).parent == tmp_path
    assert environ[MULTIPROC_DIR_VARIABLE] == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_1.db"]


def test_one_worker_keeps_its_metrics_in_memory(environ: dict[str, str], tmp_path: Path) -> None:
    environ[MULTIPROC_DIR_VARIABLE] = str(tmp_path)
    with metrics_directory(1) as path:
        assert path is None
        assert MULTIPROC_DIR_VARIABLE not in environ
    assert environ[MULTIPROC_DIR_VARIABLE] == str(tmp_path)


def test_a_worker_that_exited_has_its_live_gauges_removed(environ: dict[str, str], tmp_path: Path) -> None:
    environ[MULTIPROC_DIR_VARIABLE] = str(tmp_path)
    for name in ["gauge_livemax_41.db", "gauge_livemax_42.db", "counter_41.db", "histogram_41.db"]:
        (tmp_path / name).write_bytes(b"")
    worker_exited(41)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["counter_41.db", "gauge_livemax_42.db", "histogram_41.db"]


def test_the_supervisor_tells_of_each_worker_replaced_or_retired() -> None:
    exited: list[int] = []
    supervisor: Any = Supervisor.__new__(Supervisor)
    supervisor._on_worker_exit = exited.append
    supervisor.processes = [SimpleNamespace(pid=10), SimpleNamespace(pid=11), SimpleNamespace(pid=12)]

    def replace_one_retire_one() -> None:
        supervisor.processes = [SimpleNamespace(pid=10), SimpleNamespace(pid=13)]

    supervisor._noting_exits(replace_one_retire_one)
    assert sorted(exited) == [11, 12]
    supervisor._noting_exits(lambda: None)
    assert sorted(exited) == [11, 12]


def test_a_given_directory_that_does_not_exist_yet_is_made(environ: dict[str, str], tmp_path: Path) -> None:
    parent = tmp_path / "not" / "yet"
    environ[MULTIPROC_DIR_VARIABLE] = str(parent)
    with metrics_directory(2) as path:
        assert path is not None
        assert Path(path).parent == parent
    assert list(parent.iterdir()) == []
