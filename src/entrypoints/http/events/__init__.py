"""Live updates: a counter's changes as server-sent events."""

from entrypoints.http.events.routes import EVENT_CONTROLLERS, LastEventId, render_counter
from entrypoints.http.events.streams import EventStreams, StreamLimits, provide_event_streams, serve_events

__all__ = [
    "EVENT_CONTROLLERS",
    "EventStreams",
    "LastEventId",
    "StreamLimits",
    "provide_event_streams",
    "render_counter",
    "serve_events",
]
