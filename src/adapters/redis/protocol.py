"""The Redis protocol as this adapter speaks it: requests packed by hand, replies read strictly.

Packing a command is a few byte joins; redis-py's general packer, its argument encoding and its
reply decoding cost more than the round trip they serve once many calls share one pipeline (see
the package docstring). Replies are read undecoded (bytes), so a stored value is parsed here, by
rules that refuse what this adapter did not write: a count must be the decimal text of a signed
64-bit integer, never rounded, never guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from domain.errors import StoreCorruptedError
from domain.model import INT64_MAX, INT64_MIN

_INT64_DIGITS: Final = 19
_TIMESTAMP_DIGITS: Final = 18  # microseconds: good until the year 33658
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def pack(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP2/3 requests are the same)."""
    return b"*%d\r\n" % len(args) + b"".join(map(bulk, args))


def bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


def parse_int64(raw: object, where: str) -> int:
    if isinstance(raw, bytes):
        digits = raw[1:] if raw.startswith(b"-") else raw
        if 0 < len(digits) <= _INT64_DIGITS and digits.isdigit():  # bytes.isdigit: ASCII digits only
            value = int(raw)
            if INT64_MIN <= value <= INT64_MAX:
                return value
    raise StoreCorruptedError(f"{where} holds {raw!r}, which is not a signed 64-bit count")


def parse_microseconds(raw: object) -> int | None:
    """A timestamp the scripts wrote (server time, microseconds since the Unix epoch)."""
    if isinstance(raw, bytes) and raw.isdigit() and len(raw) <= _TIMESTAMP_DIGITS:
        return int(raw)
    return None


def parse_time(raw: object) -> datetime | None:
    # Timestamps are informative: an unreadable one is shown as missing rather than failing an
    # operation that has already been applied.
    microseconds = parse_microseconds(raw)
    return None if microseconds is None else _EPOCH + timedelta(microseconds=microseconds)


def microseconds(moment: datetime) -> bytes:
    """A time as the scripts write it: microseconds since the Unix epoch, exactly."""
    return b"%d" % ((moment - _EPOCH) // timedelta(microseconds=1))


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
