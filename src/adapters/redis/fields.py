"""A counter's hash as this adapter writes and reads it: the fields the scripts are given for
rules and restores, the HMGET of a whole counter, and the mapping of the fields a script or
HMGET returns to a Counter, by rules that refuse what this adapter did not write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from adapters.redis.protocol import microseconds, pack, parse_int64, parse_time
from domain.errors import StoreCorruptedError
from domain.model import Counter, CounterId
from domain.rules import Rules

_VERSION_DIGITS: Final = 15  # below 2^53: what the scripts' Lua numbers hold exactly


def read_counter(name: CounterId, key: bytes, fields: Sequence[Any]) -> Counter | None:
    """The counter of an HMGET of `pack_hmget`'s fields, None where the hash is missing."""
    count, created_at, updated_at, *rest = fields
    if count is None and created_at is None and updated_at is None:
        return None
    return counter(name, key, b"0" if count is None else count, created_at, updated_at, *rest)


def counter(  # noqa: PLR0917 (a counter's hash fields, in the order the scripts return them)
    name: CounterId,
    key: bytes,
    count: object,
    created_at: object,
    updated_at: object,
    expires_at: object = None,
    rules: object = None,
    admin_key_hash: object = None,
    version: object = None,
) -> Counter:
    """The fields after `updated_at` where the reply has them. A counter without a version
    was written before versions: it is at version 1."""
    parsed = None
    if rules is not None:
        try:
            parsed = Rules.load(rules)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            raise StoreCorruptedError(
                f"{key.decode()} holds rules that cannot be read", counter=str(name)
            ) from None
    return Counter(
        id=name,
        count=parse_int64(count, key.decode()),
        created_at=parse_time(created_at),
        updated_at=parse_time(updated_at),
        rules=parsed,
        expires_at=parse_time(expires_at),
        admin_key_hash=admin_key_hash.decode() if isinstance(admin_key_hash, bytes) else None,
        version=1 if version is None else parse_version(version, name, key),
    )


def rule_fields(rules: Rules | None) -> list[bytes]:
    """The rules as a counter's hash keeps them: their JSON, min_step, max_step and ttl_ms, which
    the scripts read ('' where there is none)."""
    if rules is None:
        return [b"", b"", b"", b""]
    return [
        rules.dump().encode(),
        b"" if rules.min_step is None else b"%d" % rules.min_step,
        b"" if rules.max_step is None else b"%d" % rules.max_step,
        b"" if rules.ttl_seconds is None else b"%d" % (rules.ttl_seconds * 1000),
    ]


def restore_fields(state: Counter, now: datetime) -> list[bytes]:
    """`now`: for the times state_to_restore has filled already, as far as mypy knows."""
    expires = state.expires_at
    return [
        b"%d" % state.count,
        state.key.encode(),
        microseconds(state.created_at or now),
        microseconds(state.updated_at or now),
        *rule_fields(state.rules),
        (state.admin_key_hash or "").encode(),
        b"" if expires is None else microseconds(expires),
        b"" if expires is None else b"%d" % (int(microseconds(expires)) // 1000),
        b"%d" % state.version,
    ]


def pack_hmget(key: bytes) -> bytes:
    return pack(
        b"HMGET",
        key,
        b"count",
        b"created_at",
        b"updated_at",
        b"expires_at",
        b"rules",
        b"admin_key_hash",
        b"version",
    )


def parse_version(raw: object, name: CounterId, key: bytes) -> int:
    if isinstance(raw, bytes) and raw.isdigit() and len(raw) <= _VERSION_DIGITS:
        return int(raw)
    raise StoreCorruptedError(
        f"{key.decode()} holds the version {raw!r}, which is not a version", counter=str(name)
    )
