"""The fan-out every store's change signal feeds, and the rules of what a stream sends."""

from __future__ import annotations

import pytest

from adapters.change_hub import OVERFLOW, ChangeHub
from adapters.redis.changes import state_of
from domain.changes import ChangesEndedError, is_news, missed
from domain.model import Counter, CounterId

ABC = CounterId.default("abc")
XYZ = CounterId("team", "xyz")


def _at(version: int, count: int = 0, counter: CounterId = ABC) -> Counter:
    return Counter(counter, count, version=version)


def test_only_a_newer_version_or_a_removal_is_news() -> None:
    assert is_news(None, _at(0))
    assert is_news(3, _at(4))
    assert not is_news(4, _at(4))  # a repeat
    assert not is_news(5, _at(4))  # a re-read older than what was sent
    assert is_news(5, _at(0))  # deleted
    assert not is_news(0, _at(0))  # deleted, already said
    assert is_news(0, _at(1))  # made again


def test_a_reconnecting_client_gets_the_state_unless_it_has_it() -> None:
    assert missed(None, _at(7))
    assert missed(3, _at(7))
    assert not missed(7, _at(7))
    assert missed(9, _at(2))  # deleted and made again since


async def test_consumers_of_one_counter_share_one_watch() -> None:
    watched: list[CounterId] = []
    unwatched: list[CounterId] = []
    hub = ChangeHub(on_watch=watched.append, on_unwatch=unwatched.append)
    first, second, other = hub.add(ABC, 4), hub.add(ABC, 4), hub.add(XYZ, 4)
    assert watched == [ABC, XYZ]
    hub.publish(_at(1, 1))
    assert await first.next(1) == _at(1, 1)
    assert await second.next(1) == _at(1, 1)
    assert await other.next(0.01) is None  # another counter's change is not its
    first.close()
    first.close()  # twice is harmless
    assert unwatched == []
    second.close()
    assert unwatched == [ABC]
    assert hub.watched == [XYZ]
    assert hub.consumers == 1


async def test_a_full_buffer_ends_its_consumer_and_no_other() -> None:
    hub = ChangeHub()
    slow, quick = hub.add(ABC, 2), hub.add(ABC, 8)
    for version in range(1, 4):
        hub.publish(_at(version, version))
    with pytest.raises(ChangesEndedError) as ended:
        await slow.next(1)
    assert ended.value.reason == OVERFLOW
    with pytest.raises(ChangesEndedError):
        await slow.next(1)  # ended for good
    assert [(await quick.next(1)) for _ in range(3)] == [_at(v, v) for v in range(1, 4)]


async def test_ending_every_consumer_wakes_those_waiting() -> None:
    hub = ChangeHub()
    waiting = hub.add(ABC, 1)
    hub.end_all("the server stops")
    with pytest.raises(ChangesEndedError, match="the server stops"):
        await waiting.next(10)


def test_a_redis_change_message_reads_as_the_counter_state() -> None:
    assert state_of(XYZ, b"7 -42") == Counter(XYZ, -42, version=7)
    assert state_of(XYZ, b"8 deleted") == Counter(XYZ, 0)
    assert state_of(XYZ, b"garbage") is None
    assert state_of(XYZ, b"7 x") is None
