"""`?watch=true`: a stream of `{"type": ..., "object": ...}` lines, like the real watch API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

from kube_emulator import statuses
from kube_emulator.selectors import Predicate
from kube_emulator.store import Store, Stored, encode

DEFAULT_TIMEOUT: Final = 1800  # the apiserver's --min-request-timeout
_POLL: Final = 1.0  # wake up at least this often to notice a stopping server


Render = Callable[[Stored], bytes]


def as_object(stored: Stored) -> bytes:
    return stored.body[:-1]


def _event(kind: str, stored: Stored, render: Render) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + render(stored) + b"}\n"


def _expired(revision: int, current: int) -> bytes:
    status = statuses.expired(f"too old resource version: {revision} ({current})").status
    return encode({"type": "ERROR", "object": status})


def parse_start(resource_version: str) -> int | None:
    """None means "start with the current state" ("" or "0"); raises a 400 for nonsense."""
    if resource_version in ("", "0"):
        return None
    if not resource_version.isdigit():
        raise statuses.bad_request(f'invalid resource version "{resource_version}"')
    return int(resource_version)


def stream(
    store: Store,
    namespace: str | None,
    wanted: Predicate,
    *,
    start: int | None,
    timeout: float,
    render: Render = as_object,
) -> Iterator[bytes]:
    """Events after `start` (or ADDED for every current object first) until `timeout` seconds pass.

    Objects are filtered as they are; a real server also turns an object that leaves the selection
    into a DELETED event, which this one does not.
    """
    deadline = time.monotonic() + timeout
    if start is None:
        items, start = store.snapshot(namespace)
        for stored in items:
            if wanted(stored):
                yield _event("ADDED", stored, render)
    while not store.closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        events = store.events_after(start, min(remaining, _POLL))
        if events is None:
            yield _expired(start, store.revision)
            return
        if not events:
            yield b""  # idle: lets the server check whether the client is still there
        for event in events:
            start = event.resource_version
            if (namespace is None or event.stored.namespace == namespace) and wanted(event.stored):
                yield _event(event.type, event.stored, render)
