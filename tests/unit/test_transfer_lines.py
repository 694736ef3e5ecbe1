"""The export line: what parses, what is refused and how it is worded, and that a line read back
is the counter written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInputError
from domain.model import Counter, CounterId
from domain.restore import RestoreOutcome, decide_restore, same_state, state_to_restore
from domain.rules import Rules, hash_admin_key
from domain.transfer import dump_line, parse_line

HASH = hash_admin_key("k")


def test_a_count_noted_by_hand_parses() -> None:
    line = '{"key": "visits", "value": 1234, "updated_at": "2024-05-01T00:00:00Z", "source": "countapi"}'
    counter, source = parse_line(line)
    assert counter == Counter(CounterId.default("visits"), 1234, updated_at=datetime(2024, 5, 1, tzinfo=UTC))
    assert source == "countapi"


def test_a_line_read_back_is_the_counter_written() -> None:
    counter = Counter(
        CounterId("blog", "visits"),
        -(2**63),
        created_at=datetime(2020, 1, 1, 1, 2, 3, 456789, tzinfo=UTC),
        updated_at=datetime(2024, 1, 1, tzinfo=UTC),
        rules=Rules(min_step=-1, max_step=5, resettable=True, ttl_seconds=60),
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        admin_key_hash=HASH,
        version=42,
    )
    line = dump_line(counter)
    assert "\n" not in line
    assert parse_line(line) == (counter, None)
    assert json.loads(line)["updated_at"] == "2024-01-01T00:00:00.000000Z"


def test_what_a_counter_lacks_is_left_out_of_its_line() -> None:
    assert json.loads(dump_line(Counter(CounterId.default("c"), 3))) == {
        "namespace": "default",
        "key": "c",
        "value": 3,
    }


def test_times_take_offsets_and_nanoseconds() -> None:
    counter, _ = parse_line('{"key": "c", "value": 1, "created_at": "2024-05-01T02:00:00.123456789+02:00"}')
    assert counter.created_at == datetime(2024, 5, 1, 0, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"value": 1}', "'key' is required"),
        ('{"key": "c"}', "'value' is required"),
        ('{"key": "c", "value": 1, "count": 1}', "unknown field 'count'"),
        ('{"key": "c/d", "value": 1}', "the counter key 'c/d' is invalid"),
        ('{"namespace": "", "key": "c", "value": 1}', "the counter namespace '' is invalid"),
        ('{"key": "c", "value": "12"}', "'value' must be an integer"),
        ('{"key": "c", "value": 1.5}', "'value' must be an integer"),
        ('{"key": "c", "value": true}', "'value' must be an integer"),
        ('{"key": "c", "value": 9223372036854775808}', "signed 64-bit"),
        ('{"key": "c", "value": 1, "updated_at": "yesterday"}', "'updated_at' must be an RFC 3339 time"),
        ('{"key": "c", "value": 1, "updated_at": "2024-05-01T00:00:00"}', "'updated_at' must be an RFC 3339"),
        ('{"key": "c", "value": 1, "created_at": "2024-02-30T00:00:00Z"}', "'created_at' is no valid time"),
        ('{"key": "c", "value": 1, "created_at": "1969-12-31T23:59:59Z"}', "must not be before 1970"),
        (
            (
                '{"key": "c", "value": 1, "created_at": "2024-05-02T00:00:00Z",'
                ' "updated_at": "2024-05-01T00:00:00Z"}'
            ),
            "'created_at' is after 'updated_at'",
        ),
        ('{"key": "c", "value": 1, "rules": []}', "'rules' must be an object"),
        (
            '{"key": "c", "value": 1, "rules": {"max_step": -1}}',
            "'rules' are invalid: 'max_step' must be >= 0",
        ),
        ('{"key": "c", "value": 1, "rules": {"step": 1}}', "'rules' are invalid"),
        ('{"key": "c", "value": 1, "expires_at": "2030-01-01T00:00:00Z"}', "'expires_at' needs rules"),
        ('{"key": "c", "value": 1, "admin_key_hash": "abc"}', "'admin_key_hash' must be a SHA-256"),
        ('{"key": "c", "value": 1, "version": -1}', "'version' must be an integer from 0 to"),
        ('{"key": "c", "value": 1, "version": 9007199254740992}', "'version' must be an integer from 0 to"),
        ('{"key": "c", "value": 1, "source": ""}', "'source' must be 1-64 printable ASCII"),
        ('{"key": "c", "value": 1, "source": "caf\\u00e9"}', "'source' must be 1-64 printable ASCII"),
    ],
)
def test_a_malformed_line_says_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_line(line)
    assert message in str(raised.value)


NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_restore_decisions() -> None:
    wanted = Counter(CounterId.default("c"), 5, updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    stored = state_to_restore(wanted, None, NOW)
    assert (stored.created_at, stored.updated_at, stored.version) == (wanted.updated_at, wanted.updated_at, 1)
    assert decide_restore(None, wanted, replace=False, now=NOW) is RestoreOutcome.WRITTEN
    assert decide_restore(stored, wanted, replace=False, now=NOW) is RestoreOutcome.UNCHANGED
    other = Counter(CounterId.default("c"), 6, updated_at=wanted.updated_at)
    assert decide_restore(stored, other, replace=False, now=NOW) is RestoreOutcome.CONFLICT
    assert decide_restore(stored, other, replace=True, now=NOW) is RestoreOutcome.REPLACED
    gone = Counter(wanted.id, 1, rules=Rules(ttl_seconds=5), expires_at=NOW - timedelta(seconds=1))
    assert decide_restore(None, gone, replace=True, now=NOW) is RestoreOutcome.EXPIRED


def test_same_state_allows_a_store_that_keeps_milliseconds() -> None:
    moment = datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    wanted = Counter(CounterId.default("c"), 5, created_at=moment, updated_at=moment)
    kept = Counter(wanted.id, 5, created_at=moment.replace(microsecond=123000), updated_at=moment)
    assert same_state(kept, wanted)
    later = Counter(wanted.id, 5, created_at=moment + timedelta(milliseconds=2), updated_at=moment)
    assert not same_state(later, wanted)
    assert not same_state(Counter(wanted.id, 5, created_at=moment, updated_at=moment, rules=Rules()), wanted)


def test_a_restored_version_never_goes_back() -> None:
    existing = Counter(CounterId.default("c"), 1, version=9)
    assert state_to_restore(Counter(existing.id, 2, version=3), existing, NOW).version == 10
    assert state_to_restore(Counter(existing.id, 2, version=30), existing, NOW).version == 30
