"""Rules in the ConfigMap's documents: a map of today's format (no rules) reads and counts as
before, and counters created with rules are stored next to them in the same documents."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from domain.errors import CounterExistsError, StepOutOfRangeError
from domain.model import CounterId
from domain.rules import Rules
from tests.integration.configmap_fixtures import KubeTarget, OpenRepo, seed, stored_data

pytestmark = pytest.mark.integration

STAMPS = '"created_at": "2026-01-02T03:04:05.000Z", "updated_at": "2026-01-02T03:04:06.000Z"'
TODAY = {"visits": f'{{"count": 41, {STAMPS}}}', "-4-blogpost": f'{{"count": 7, {STAMPS}}}'}


async def test_a_map_of_todays_format_keeps_working_next_to_counters_with_rules(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    seed(admin, kube.namespace, cm_name, dict(TODAY))
    repository = await open_repo(cm_name)
    visits = await repository.get(CounterId.default("visits"))
    assert (visits.count, visits.rules, visits.expires_at, visits.admin_key_hash) == (41, None, None, None)
    assert visits.version == 1  # a value of before versions
    post_state = (await repository.increment(CounterId("blog", "post"), 100)).counter
    assert (post_state.count, post_state.version) == (107, 2)
    with pytest.raises(CounterExistsError):
        await repository.create(CounterId.default("visits"), 0, Rules(), None)
    rules = Rules(min_step=0, max_step=1, ttl_seconds=1)
    await repository.create(CounterId("blog", "ruled"), 3, rules, "abc")
    with pytest.raises(StepOutOfRangeError):
        await repository.increment(CounterId("blog", "ruled"), 2)
    data = stored_data(admin, kube.namespace, cm_name)
    assert data["visits"] == TODAY["visits"]  # untouched, byte for byte
    post = json.loads(data["-4-blogpost"])
    assert set(post) == {"count", "created_at", "updated_at", "version"}
    assert post["version"] == 2
    ruled = json.loads(data["-4-blogruled"])
    assert (ruled["count"], ruled["rules"], ruled["admin_key_hash"]) == (
        3, {"max_step": 1, "min_step": 0, "ttl_seconds": 1}, "abc",
    )  # fmt: skip
    assert list(ruled)[:4] == ["count", "created_at", "updated_at", "version"]
    # Expired, it is gone; the next write takes it out of the map.
    await asyncio.sleep(1.5)
    assert (await repository.get(CounterId("blog", "ruled"))).count == 0
    await repository.increment(CounterId.default("visits"), 1)
    assert "-4-blogruled" not in stored_data(admin, kube.namespace, cm_name)
