"""A change with a counter's own admin key lands only on the counter it was judged on, over real
stores: a SQLite file, a Redis server (its set and delete scripts check the counter's creation
time), and the ConfigMap store on the Kubernetes API. tests/unit/test_owner_race.py runs the same
over the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.sqlite import SqliteCounterRepository
from tests.contract.owner_race_contract import OwnerRaceContract

if TYPE_CHECKING:
    from adapters.configmap import ConfigMapCounterRepository
    from adapters.redis import RedisCounterRepository
    from tests.integration.configmap_fixtures import OpenRepo

pytestmark = pytest.mark.integration


class TestSqliteOwnerRace(OwnerRaceContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteCounterRepository]:
        repository = SqliteCounterRepository(tmp_path / "counters.sqlite3")
        await repository.open()
        yield repository
        await repository.close()


class TestRedisOwnerRace(OwnerRaceContract):
    @pytest.fixture
    def store(self, redis_repository: RedisCounterRepository) -> RedisCounterRepository:
        return redis_repository


class TestConfigMapOwnerRace(OwnerRaceContract):
    @pytest.fixture
    async def store(self, open_repo: OpenRepo, cm_name: str) -> ConfigMapCounterRepository:
        return await open_repo(cm_name)
