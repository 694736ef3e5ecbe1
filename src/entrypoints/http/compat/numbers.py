"""Integers in the query of the compatible APIs: plain decimal only (`int()` would also take
" 1", "1_0" and other scripts' digits)."""

from __future__ import annotations

import re

from domain.model import INT64_MAX, INT64_MIN

# Leading zeros (Go's Atoi takes "007"), then at most 20 digits: enough to tell "out of range"
# from "not a number" for the signed 64-bit range, and never a huge int() to parse.
_INTEGER_RE = re.compile(r"[+-]?0*[0-9]{1,20}")


def plain_integer(text: str) -> int | None:
    """`text` as an integer, or None when it is not written as a plain decimal one."""
    return int(text) if _INTEGER_RE.fullmatch(text) is not None else None


def int64(text: str) -> int | None:
    """`text` as a signed 64-bit integer, or None."""
    number = plain_integer(text)
    return number if number is not None and INT64_MIN <= number <= INT64_MAX else None
