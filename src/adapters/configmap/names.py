"""Which data key of the ConfigMap holds which counter.

Data keys may hold only A-Z a-z 0-9 - _ . (up to 253 characters), the very characters of
counter names, so a namespace and a key cannot be joined by a separator of their own. Instead:

- a counter of the namespace `default` whose key has the form names had before namespaces (1-63
  characters, a letter or a digit first) is stored under its key, as before: a ConfigMap
  written then is read as it is, with nothing to migrate;
- every other counter is stored under `-{length of the namespace}-{namespace}{key}`, e.g.
  `-4-blog.visits` for the key `.visits` of the namespace `blog`: the length says where the
  namespace ends, so no two (namespace, key) pairs share a data key.

The first character tells the three kinds of data key apart: a letter or a digit, a counter
stored as before; `-`, any other counter; `_`, the store's own keys (`_idempotency`, `_writers`),
which therefore no counter ever shares, whatever its name. A data key of no form is not a
counter and is left alone."""

from __future__ import annotations

import re
from typing import Final

from domain.errors import InvalidCounterNameError
from domain.model import DEFAULT_NAMESPACE, CounterId

_AS_BEFORE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENCODED: Final = re.compile(r"-([1-9][0-9]?)-")


def data_key(counter: CounterId) -> str:
    if counter.namespace == DEFAULT_NAMESPACE and _AS_BEFORE.fullmatch(counter.key):
        return counter.key
    return f"-{len(counter.namespace)}-{counter.namespace}{counter.key}"


def counter_of(key: str) -> CounterId | None:
    """The counter stored under data key `key`, or None when it holds no counter."""
    if _AS_BEFORE.fullmatch(key):
        return CounterId(DEFAULT_NAMESPACE, key)
    found = _ENCODED.match(key)
    if found is None:
        return None
    start, length = found.end(), int(found.group(1))
    try:
        counter = CounterId(key[start : start + length], key[start + length :])
    except InvalidCounterNameError:
        return None
    # Only the one form data_key writes: `-7-defaultvisits` is not a second home of `visits`.
    return counter if data_key(counter) == key else None
