"""The room in the ConfigMap: every byte written is counted, and what does not fit is refused first.

The Kubernetes API refuses a ConfigMap whose data values pass 1 MiB (422 `Too long`), and etcd
refuses a request over 1.5 MiB. This store counts its data as it is serialised, keys and values,
with their JSON escapes (`used`: an upper bound of what the API counts), `_writers` at its
largest (`WRITERS_BYTES`: it is bounded by `MAX_WRITERS` entries). Two limits follow:
`MAX_BYTES` (1 MiB less 16 KiB) is never passed by a write that grows the data, each write is
measured exactly before it is sent; `FULL_BYTES` (1 MiB less 64 KiB) is where the ConfigMap is
full for anything new.

What may grow is kept in reserve: each counter's value can grow only by the digits of its count
(at most 20 characters: -9223372036854775808), so the reserve holds, for every counter, the
characters its count may still gain (`growth`). New counter names and new Idempotency-Key records
are accepted only while `used + reserve` stays within `FULL_BYTES`; increments and sets of an
existing counter keep `used + reserve` as it is, so they always fit, whatever else is stored, and
deletes only give room back. A value that is not in the format this store writes (edited by
hand) is reserved `FOREIGN_GROWTH`, as its first rewrite adds `updated_at`; the 48 KiB between the
two limits absorb what such a value may grow beyond that. A change that does not grow the data is
always allowed, even in a ConfigMap that an older version filled past these limits.

Full is therefore a state of the data, not an error of the API: new names are refused with
StoreFullError (permanent until counters are deleted), new Idempotency-Keys with
IdempotencyTableFullError while live records hold the room (until the oldest expires: records are
kept for their whole TTL, never dropped early to make room).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from domain.errors import IdempotencyTableFullError, StoreFullError

MIB: Final = 1024 * 1024
# The data as JSON, keys, values and escapes: never more after a write that grows it, and where
# the ConfigMap is full for new counter names and new Idempotency-Keys.
MAX_BYTES: Final = MIB - 16 * 1024
FULL_BYTES: Final = MIB - 64 * 1024
MAX_WRITERS: Final = 256  # entries of `_writers`, most recent kept
MAX_WRITER_ID: Final = 32  # characters of a writer's name in `_writers`; longer ones are dropped
# `"_writers":"{\"<id>\":[<seq>,<unix time>],...}",` at its largest.
WRITERS_BYTES: Final = 16 + MAX_WRITERS * len(json.dumps(f'"{"w" * MAX_WRITER_ID}":[{2**63},{10**11}],'))
COUNT_CHARACTERS: Final = len(str(-(2**63)))  # the widest count, 20 characters
# A version may grow to 16 digits (2^53, where JSON readers stop being exact); a value of before
# versions gains the whole field with its first change.
VERSION_CHARACTERS: Final = len(str(2**53))
VERSION_FIELD: Final = len(', "version": ')
FOREIGN_GROWTH: Final = 128  # `, "updated_at": "..."`, the count's digits and re-spaced fields
# How long a client is told to wait when the store is full (it stays full until counters are
# deleted), and at most when new Idempotency-Keys wait for the oldest record to expire.
FULL_RETRY_AFTER: Final = 3600

# The start of a value as Value.dump writes it; its timestamps always have 24 characters.
_OWN_VALUE: Final = re.compile(
    r'\{"count": (-?[0-9]{1,19})(?:, "created_at": "[^"\\]{24}")?, "updated_at": "[^"\\]{24}"'
    r'(?:, "version": ([0-9]{1,16}))?[,}]'
)


def entry_bytes(key: str, value: str) -> int:
    """What one data key adds to the data as JSON: `"key":"value",`, escapes included."""
    return len(json.dumps(key)) + len(json.dumps(value)) + 2


def growth(value: str) -> int:
    """The most an increment or a set can add to this counter's value, as serialised: the
    digits its count and its version may still gain."""
    own = _OWN_VALUE.match(value)
    if own is None:
        return FOREIGN_GROWTH
    version = own.group(2)
    versions = VERSION_FIELD + VERSION_CHARACTERS if version is None else VERSION_CHARACTERS - len(version)
    return COUNT_CHARACTERS - len(own.group(1)) + versions


def reserves(key: str) -> bool:
    """Whether the value under `key` may grow in place: a counter (reserved keys start with `_`)."""
    return not key.startswith("_")


@dataclass(frozen=True, slots=True)
class Footprint:
    """The bytes of the data less `_writers` (`used`), and what its counters may still grow by."""

    used: int
    reserve: int

    @staticmethod
    def of(data: Mapping[str, str], writers_key: str) -> Footprint:
        body = {k: v for k, v in data.items() if k != writers_key}
        used = len(json.dumps(body, separators=(",", ":"))) if body else 1  # 1 + each entry_bytes
        return Footprint(used, sum(growth(v) for k, v in body.items() if reserves(k)))

    def after(
        self, data: Mapping[str, str], changes: Mapping[str, str | None], writers_key: str
    ) -> Footprint:
        """The footprint once `changes` (None: removed) are applied to `data`, whose it is."""
        used, reserve = self.used, self.reserve
        for key, new in changes.items():
            if key == writers_key:
                continue
            old = data.get(key)
            if old is not None:
                used -= entry_bytes(key, old)
                reserve -= growth(old) if reserves(key) else 0
            if new is not None:
                used += entry_bytes(key, new)
                reserve += growth(new) if reserves(key) else 0
        return Footprint(used, reserve)

    def fits_new(self) -> bool:
        """Room for something new: everything reserved still fits after it."""
        return self.used + self.reserve + WRITERS_BYTES <= FULL_BYTES

    def fits(self) -> bool:
        """Room for a change of what exists (its growth was reserved): within the hard limit."""
        return self.used + WRITERS_BYTES <= MAX_BYTES


def store_full(where: str) -> StoreFullError:
    """Permanent until counters are deleted: never retried, and the client is told to come back
    much later."""
    return StoreFullError(
        f"{where} is full: this store keeps its data under {FULL_BYTES} bytes, below the 1 MiB limit of"
        " a ConfigMap, with room for its counters to grow; new counters and new Idempotency-Keys are"
        " refused, existing counters still count, set and delete: delete counters or use another store",
        retry_after=FULL_RETRY_AFTER,
    )


def table_full(where: str, oldest_expires_in: float) -> IdempotencyTableFullError:
    wait = max(1, math.ceil(oldest_expires_in))
    return IdempotencyTableFullError(
        f"the Idempotency-Key table of {where} is full until records expire (the oldest in {wait} s):"
        " each key is kept for its whole TTL, so a new key is refused while the ConfigMap has no room"
        " for it; increments without an Idempotency-Key, and repeats of recorded keys, go on",
        retry_after=min(wait, FULL_RETRY_AFTER),
    )
