"""A change with a counter's own admin key lands only on the counter it was judged on (in-memory
store); tests/integration/test_owner_race_stores.py runs the same over SQLite and Redis."""

from __future__ import annotations

import pytest

from adapters.memory import InMemoryCounterRepository
from tests.contract.owner_race_contract import OwnerRaceContract


class TestInMemoryOwnerRace(OwnerRaceContract):
    @pytest.fixture
    def store(self, memory_store: InMemoryCounterRepository) -> InMemoryCounterRepository:
        return memory_store
