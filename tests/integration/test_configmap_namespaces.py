"""A ConfigMap written before namespaces is the namespace `default`; every other counter gets a
data key that no counter of before and none of the store's own keys can have."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from adapters.configmap import IDEMPOTENCY_KEY
from adapters.configmap.names import counter_of, data_key
from domain.idempotency import Idempotency
from domain.model import CounterId
from tests.contract.namespace_contract import NAMES, NAMESPACES
from tests.integration.configmap_fixtures import KubeTarget, OpenRepo, seed, stored_data

STAMP = "2026-01-01T00:00:00.000Z"


def _record(fingerprint: str, count: int) -> dict[str, Any]:
    expires = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat(timespec="milliseconds")
    return {
        "fingerprint": fingerprint,
        "count": count,
        "updated_at": STAMP,
        "expires_at": expires.replace("+00:00", "Z"),
    }


async def test_a_configmap_written_before_namespaces_is_the_namespace_default(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    before = hashlib.sha256(b"increment\nvisits\n1").hexdigest()  # the fingerprint of before
    key = Idempotency.for_increment("retried across the upgrade", CounterId.default("visits"), 1, 3600.0)
    assert key.fingerprint == before
    untouched = (
        '{"count": 3, "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}'
    )
    seed(
        admin,
        kube.namespace,
        cm_name,
        {
            "visits": json.dumps({"count": 7, "created_at": STAMP, "updated_at": STAMP}),
            "9": untouched,
            IDEMPOTENCY_KEY: json.dumps({key.record_key: _record(before, 7)}),
            "-7-defaultabc": '{"count": 1}',  # not the form this store writes: no counter
        },
    )
    repository = await open_repo(cm_name)
    visits = CounterId.default("visits")
    assert (await repository.get(visits)).count == 7
    listed = (await repository.list("default", None, 10)).counters
    assert [(c.key, c.count) for c in listed] == [("9", 3), ("visits", 7)]
    replay = await repository.increment(visits, 1, key)
    assert (replay.replayed, replay.counter.id, replay.counter.count) == (True, visits, 7)
    assert (await repository.increment(visits, 1)).counter.count == 8
    await repository.increment(CounterId("blog", "visits"), 5)
    await repository.increment(CounterId.default("_idempotency"), 2)
    await repository.increment(CounterId.default("x" * 64), 1)
    data = stored_data(admin, kube.namespace, cm_name)
    assert json.loads(data["visits"])["count"] == 8
    assert data["9"] == untouched
    assert json.loads(data["-4-blogvisits"])["count"] == 5
    assert json.loads(data["-7-default_idempotency"])["count"] == 2
    assert json.loads(data["-7-default" + "x" * 64])["count"] == 1
    assert key.record_key in json.loads(data[IDEMPOTENCY_KEY])
    assert data["-7-defaultabc"] == '{"count": 1}'
    assert (await repository.get(CounterId.default("abc"))).count == 0
    assert [c.key for c in (await repository.list("blog", None, 10)).counters] == ["visits"]


def test_data_keys_are_one_to_one_and_apart_from_the_stores_own() -> None:
    seen: dict[str, CounterId] = {}
    for namespace in {*NAMESPACES, "a.b", "a", "ab"}:
        for key in {*NAMES, "c", "b.c", "bc"}:
            counter = CounterId(namespace, key)
            stored = data_key(counter)
            assert stored not in seen, (counter, seen.get(stored))
            seen[stored] = counter
            assert counter_of(stored) == counter
            assert not stored.startswith("_")
            assert len(stored) <= 253
    for own in (IDEMPOTENCY_KEY, "_writers", "-x-", "-0-abc", "-99-a", "-2-a", ""):
        assert counter_of(own) is None
