"""Typed bridges from the app's state to handler parameters (Provide(...) takes these)."""

from __future__ import annotations

from litestar.datastructures import State

from domain.services import CounterService

SERVICE_STATE_KEY = "counter_service"
BACKEND_STATE_KEY = "backend"
FAST_PATH_STATE_KEY = "fast_path"  # whether the increment routes answer from their lean layer


def provide_counter_service(state: State) -> CounterService:
    service: CounterService = state[SERVICE_STATE_KEY]
    return service


def provide_backend_name(state: State) -> str:
    name: str = state[BACKEND_STATE_KEY]
    return name
