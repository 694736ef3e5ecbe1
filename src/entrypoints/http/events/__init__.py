"""Live updates: a counter's changes as server-sent events."""

from entrypoints.http.events.routes import EVENT_CONTROLLERS, render_counter
from entrypoints.http.events.streams import EventStreams, StreamLimits, serve_events

__all__ = ["EVENT_CONTROLLERS", "EventStreams", "StreamLimits", "render_counter", "serve_events"]
