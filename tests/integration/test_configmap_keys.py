"""The ConfigMap store's Idempotency-Key table: every key kept for its whole TTL, whatever other
clients send; a new key refused, never an old one forgotten, when the ConfigMap has no room."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.configmap import (
    IDEMPOTENCY_KEY,
    IdempotencyTableFullError,
)
from domain.errors import (
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import CounterId
from tests.integration.configmap_fixtures import (
    KubeTarget,
    OpenRepo,
    keyed,
    seed,
    stored_data,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# --- the Idempotency-Key table ----------------------------------------------------------------


def stored_records(admin: Any, namespace: str, name: str) -> dict[str, Any]:
    records: dict[str, Any] = json.loads(stored_data(admin, namespace, name).get(IDEMPOTENCY_KEY, "{}"))
    return records


def old_record(fingerprint: str, expires_at: str) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "count": 1,
        "updated_at": "2025-01-01T00:00:00.000Z",
        "expires_at": expires_at,
    }


async def test_a_key_is_kept_for_its_ttl_whatever_other_clients_send(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    k0 = keyed("K0")
    assert not (await repository.increment(CounterId.default("c"), 1, k0)).replayed
    others = [keyed(f"other-{i}", "d") for i in range(1200)]
    results = await asyncio.gather(*(repository.increment(CounterId.default("d"), 1, key) for key in others))
    assert not any(r.replayed for r in results)
    again = await repository.increment(CounterId.default("c"), 1, k0)
    assert (again.replayed, again.counter.count) == (True, 1)  # replayed, not counted again
    assert (await repository.get(CounterId.default("c"))).count == 1
    records = stored_records(admin, kube.namespace, cm_name)
    assert len(records) == 1201
    assert k0.record_key in records


async def test_expired_records_are_dropped_and_live_ones_kept(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    live, gone = keyed("live"), keyed("gone")
    table = {
        live.record_key: old_record(live.fingerprint, "2999-01-01T00:00:00.000Z"),
        gone.record_key: old_record(gone.fingerprint, "2000-01-01T00:00:00.000Z"),
    }
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(table)})
    repository = await open_repo(cm_name)
    fresh = keyed("fresh")
    assert not (await repository.increment(CounterId.default("c"), 1, fresh)).replayed
    assert set(stored_records(admin, kube.namespace, cm_name)) == {live.record_key, fresh.record_key}
    assert (await repository.increment(CounterId.default("c"), 1, live)).replayed
    expired = await repository.increment(
        CounterId.default("c"), 1, gone
    )  # expired: the domain says apply it again
    assert (expired.replayed, expired.counter.count) == (False, 3)


async def test_a_full_idempotency_table_refuses_new_keys_and_forgets_none(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    await repository.set(CounterId.default("c"), 0)
    await repository.set(CounterId.default("d"), 0)
    k0 = keyed("K0")
    await repository.increment(CounterId.default("c"), 1, k0)
    keys = [keyed(f"key-{i}") for i in range(5000)]  # more than 1 MiB of records
    results = await asyncio.gather(
        *(repository.increment(CounterId.default("c"), 1, key) for key in keys), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) > 2000, "most of 1 MiB holds records"
    assert refused, "5000 records do not fit in 1 MiB"
    for error in refused:
        assert isinstance(error, IdempotencyTableFullError)
        assert "Idempotency-Key table" in str(error)
        assert "is full until records expire" in str(error)
        # The oldest record expires in about an hour (TTL 3600 s): come back then, not in 1 s.
        assert 60 < error.retry_after <= 3600
    count = 1 + len(accepted)
    assert (await repository.get(CounterId.default("c"))).count == count  # the refused ones changed nothing
    writes = repository.api_writes
    with pytest.raises(StoreUnavailableError, match="is full until records expire"):
        await repository.increment(CounterId.default("d"), 1, keyed("one more", "d"))
    assert repository.api_writes == writes, "refused before writing"
    # Nothing was forgotten: the first key and every accepted one are replayed.
    assert (await repository.increment(CounterId.default("c"), 1, k0)).replayed
    assert all([(await repository.increment(CounterId.default("c"), 1, key)).replayed for key in keys[:50]])
    # Unkeyed increments and existing counters go on.
    assert (await repository.increment(CounterId.default("c"), 1)).counter.count == count + 1
    assert (await repository.increment(CounterId.default("d"), 5)).counter.count == 5
    assert len(stored_records(admin, kube.namespace, cm_name)) == 1 + len(accepted)


async def test_expired_records_make_room_in_a_full_table(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    keys = [keyed(f"old-{i}") for i in range(3500)]
    table = {k.record_key: old_record(k.fingerprint, "2000-01-01T00:00:00.000Z") for k in keys}
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(table)})
    repository = await open_repo(cm_name)
    fresh = keyed("fresh")
    assert not (await repository.increment(CounterId.default("c"), 1, fresh)).replayed
    assert list(stored_records(admin, kube.namespace, cm_name)) == [fresh.record_key]


async def test_a_record_holds_the_whole_fingerprint_and_is_named_by_the_record_key(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    idempotency = Idempotency.for_increment("order 42", CounterId.default("c"), 3, 3600.0)
    await repository.increment(CounterId.default("c"), 3, idempotency)
    records = json.loads(stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY])
    # The domain's name for the record, never the key itself.
    assert list(records) == [idempotency.record_key]
    assert "order 42" not in json.dumps(records)
    assert records[idempotency.record_key]["fingerprint"] == idempotency.fingerprint
    assert len(idempotency.fingerprint) == 64
    assert records[idempotency.record_key]["count"] == 3


@pytest.mark.parametrize("name_length", [32, 64])
async def test_a_record_of_the_previous_format_is_dropped_on_read(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any, name_length: int
) -> None:
    """The previous version kept 32 characters of the key's hash and of the fingerprint. Such a
    record is ignored, not taken for another request: its key counts once more, then is
    recorded in the current format."""
    idempotency = Idempotency.for_increment("k", CounterId.default("c"), 1, 3600.0)
    old = {
        hashlib.sha256(b"k").hexdigest()[:name_length]: {
            "fingerprint": idempotency.fingerprint[:32],
            "count": 1,
            "updated_at": "2025-01-01T00:00:00.000Z",
            "expires_at": "2999-01-01T00:00:00.000Z",
        }
    }
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(old)})
    repository = await open_repo(cm_name)
    first = await repository.increment(CounterId.default("c"), 1, idempotency)
    assert (first.replayed, first.counter.count) == (False, 2)
    again = await repository.increment(CounterId.default("c"), 1, idempotency)
    assert (again.replayed, again.counter.count) == (True, 2)
    records = json.loads(stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY])
    assert list(records) == [idempotency.record_key]
