"""The export line: one counter as one JSON object on one line, what `counter export` writes and
`counter import` reads, whichever store either side uses.

    {"namespace": "blog", "key": "visits", "value": 1234, "created_at": "2024-01-02T03:04:05.123456Z",
     "updated_at": "...", "rules": {"max_step": 1}, "expires_at": "...", "admin_key_hash": "<sha256>",
     "version": 7}

Only `key` and `value` are required (`namespace` defaults to `default`), so a count noted by hand
from another service imports: `{"key": "visits", "value": 1234, "updated_at": "2024-05-01T00:00:00Z",
"source": "countapi"}`. `source` says where a count came from; it is checked and reported, not
stored. A field left out is chosen by the store that imports it (the times: the time of the
import; created_at: updated_at when only that is given) and is not compared when the line is
imported again. Times are RFC 3339 with an offset. Unknown fields are refused, so that a typo is
not silently dropped.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

from domain.errors import InvalidInputError
from domain.model import DEFAULT_NAMESPACE, Counter, CounterId, check_value
from domain.rules import Rules

_TIMES: Final = ("created_at", "updated_at", "expires_at")
_FIELDS: Final = frozenset(
    {"namespace", "key", "value", "rules", "admin_key_hash", "version", "source", *_TIMES}
)
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_SOURCE: Final = re.compile(r"[\x20-\x7e]{1,64}")
# RFC 3339: a full date, `T` (or a space), a time and an offset; what datetime.fromisoformat
# takes besides (week dates, no offset) is refused.
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)  # every store keeps times from here on
# What every store keeps exactly (Redis's scripts count versions in Lua's doubles).
MAX_VERSION: Final = 2**53 - 1


class LineError(InvalidInputError):
    """A line that is not a counter; the message says what is wrong with it."""

    title = "Invalid export line"


def _time(doc: dict[str, Any], field: str) -> datetime | None:
    text = doc.get(field)
    if text is None:
        return None
    if not isinstance(text, str) or _RFC3339.fullmatch(text) is None:
        raise LineError(f"{field!r} must be an RFC 3339 time such as 2024-05-01T12:00:00Z, not {text!r:.60}")
    digits = re.sub(r"(\.\d{6})\d+", r"\1", text)  # a datetime keeps microseconds
    try:
        moment = datetime.fromisoformat(digits.replace("z", "Z")).astimezone(UTC)
    except ValueError:
        raise LineError(f"{field!r} is no valid time: {text!r:.60}") from None
    if moment < _EPOCH:
        raise LineError(f"{field!r} must not be before 1970: {text!r:.60}")
    return moment


def _rules(doc: object) -> Rules | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise LineError("'rules' must be an object")
    try:
        return Rules.load(json.dumps(doc))
    except ValueError as error:
        raise LineError(f"'rules' are invalid: {error}") from None


def _version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise LineError(f"'version' must be an integer from 0 to {MAX_VERSION}, not {version!r:.40}")
    return version


def parse_line(text: str) -> tuple[Counter, str | None]:
    """The counter a line describes and its `source`, or LineError saying what is wrong."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise LineError(f"not JSON: {error}") from None
    if not isinstance(doc, dict):
        raise LineError("not a JSON object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise LineError(f"unknown field {unknown[0]!r}; known are {', '.join(sorted(_FIELDS))}")
    if "key" not in doc or "value" not in doc:
        raise LineError(f"{'key' if 'key' not in doc else 'value'!r} is required")
    counter_id = CounterId(doc.get("namespace", DEFAULT_NAMESPACE), doc["key"])
    value = doc["value"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise LineError(f"'value' must be an integer, not {value!r:.40}")
    check_value(value)
    rules = _rules(doc.get("rules"))
    key_hash = doc.get("admin_key_hash")
    if key_hash is not None and (not isinstance(key_hash, str) or _SHA256_HEX.fullmatch(key_hash) is None):
        raise LineError("'admin_key_hash' must be a SHA-256 in lowercase hex (64 characters)")
    version = _version(doc.get("version", 0))
    source = doc.get("source")
    if source is not None and (not isinstance(source, str) or _SOURCE.fullmatch(source) is None):
        raise LineError("'source' must be 1-64 printable ASCII characters")
    created_at, updated_at, expires_at = (_time(doc, field) for field in _TIMES)
    if created_at is not None and updated_at is not None and created_at > updated_at:
        raise LineError("'created_at' is after 'updated_at'")
    if expires_at is not None and (rules is None or rules.ttl_seconds is None):
        raise LineError("'expires_at' needs rules with a 'ttl_seconds'")
    counter = Counter(
        counter_id,
        value,
        created_at=created_at,
        updated_at=updated_at,
        rules=rules,
        expires_at=expires_at,
        admin_key_hash=key_hash,
        version=version,
    )
    return counter, source


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def dump_line(counter: Counter) -> str:
    """The line of `counter` (no newline): everything it carries, what it does not left out."""
    doc: dict[str, Any] = {"namespace": counter.namespace, "key": counter.key, "value": counter.count}
    for field in _TIMES:
        moment = getattr(counter, field)
        if moment is not None:
            doc[field] = _format_time(moment)
    if counter.rules is not None:
        doc["rules"] = json.loads(counter.rules.dump())
    if counter.admin_key_hash is not None:
        doc["admin_key_hash"] = counter.admin_key_hash
    if counter.version:
        doc["version"] = counter.version
    return json.dumps(doc, separators=(",", ":"))
