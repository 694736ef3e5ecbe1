from __future__ import annotations

import pytest

from adapters.memory import InMemoryCounterRepository
from tests.contract.repository_contract import Reopen, RepositoryContract


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def repository(self) -> InMemoryCounterRepository:
        return InMemoryCounterRepository()

    @pytest.fixture
    def reopen(self) -> Reopen:
        return None
