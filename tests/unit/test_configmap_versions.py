"""The ConfigMap codec's versions: old values read at 1, unreadable ones are refused, and the room
reserved for a counter covers the digits its version may still gain."""

from __future__ import annotations

import json

import pytest

from adapters.configmap.codec import StoredRecord, Value, parse_records, parse_value
from adapters.configmap.room import COUNT_CHARACTERS, VERSION_CHARACTERS, VERSION_FIELD, growth
from domain.model import CounterId

STAMP = "2026-01-02T03:04:05.000Z"
OLD = f'{{"count": 41, "created_at": "{STAMP}", "updated_at": "{STAMP}"}}'


def test_a_value_of_before_versions_is_at_version_1() -> None:
    assert parse_value(OLD).version == 1
    assert parse_value(OLD).counter(CounterId.default("c")).version == 1


def test_the_version_follows_updated_at_and_round_trips() -> None:
    value = Value(5, STAMP, STAMP, {}, version=12)
    text = value.dump()
    assert list(json.loads(text)) == ["count", "created_at", "updated_at", "version"]
    assert parse_value(text) == value


@pytest.mark.parametrize("version", ["0", "-1", '"3"', "1.5", "true", str(2**53 + 1)])
def test_an_unreadable_version_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="version"):
        parse_value(f'{{"count": 1, "version": {version}}}')


def test_growth_reserves_the_version_digits_and_the_field_for_old_values() -> None:
    new = Value(5, STAMP, STAMP, {}, version=12).dump()
    assert growth(new) == COUNT_CHARACTERS - 1 + VERSION_CHARACTERS - 2
    assert growth(OLD) == COUNT_CHARACTERS - 2 + VERSION_FIELD + VERSION_CHARACTERS
    widest = Value(-(2**63), STAMP, STAMP, {}, version=2**53).dump()
    assert len(widest) - len(new) <= growth(new)
    assert len(widest) - len(OLD) <= growth(OLD)


def test_records_keep_the_version_and_old_records_read_at_1() -> None:
    name, fingerprint = "a" * 64, "b" * 64
    record = StoredRecord(fingerprint, 3, STAMP, STAMP, 0.0, 7)
    table = json.dumps({name: record.dump()})
    assert parse_records(table)[name].version == 7
    before = {"fingerprint": fingerprint, "count": 3, "updated_at": STAMP, "expires_at": STAMP}
    old = json.dumps({name: before})
    assert parse_records(old)[name].version == 1
    assert parse_records(old)[name].for_counter(CounterId.default("c"), None).counter.version == 1
