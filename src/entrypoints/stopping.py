"""Word that the server has begun to stop, for what would otherwise hold its shutdown open.

uvicorn tells the app that it stops (the lifespan's shutdown) only once every connection has
closed, or after the graceful shutdown timeout. A live-update stream never ends by itself, so it
must learn earlier: the server's protocol announces the stop when uvicorn asks its connections
to finish (uvicorn_server.py), and the streams end at once, cleanly.
"""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable[[], None]] = []


def when_stopping(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` when the server begins to stop; returns what stops listening."""
    _listeners.append(listener)

    def forget() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return forget


def announce_stopping() -> None:
    """The server stops: tell every listener (each must be quick and may be told twice)."""
    for listener in _listeners:
        listener()
