"""`/_emulator/...`: control a running emulator over HTTP (e.g. one started in another process).

GET    /_emulator/stats       counters (requests by verb, writes, conflicts, faults, ...)
GET    /_emulator/faults      the active `Faults` as JSON
POST   /_emulator/faults      set faults: a JSON object with `Faults` fields (PUT works too)
DELETE /_emulator/faults      switch faults off
GET    /_emulator/settings    {"write_delay": seconds}
POST   /_emulator/settings    change settings (PUT works too)
POST   /_emulator/reset       forget all objects, zero the counters, switch faults off
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from kube_emulator.faults import Faults
from kube_emulator.messages import Request, Response
from kube_emulator.state import EmulatorState


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _body(request: Request) -> Any:
    return json.loads(request.body or b"{}")


def _stats(state: EmulatorState, request: Request) -> Response:
    if request.method != "GET":
        return _error(405, f"{request.method} not allowed on /_emulator/stats")
    return Response.json(200, state.snapshot())


def _faults(state: EmulatorState, request: Request) -> Response:
    if request.method in ("POST", "PUT"):
        state.set_faults(Faults.from_json(_body(request)))
    elif request.method == "DELETE":
        state.clear_faults()
    elif request.method != "GET":
        return _error(405, f"{request.method} not allowed on /_emulator/faults")
    return Response.json(200, state.faults.faults.to_json())


def _settings(state: EmulatorState, request: Request) -> Response:
    if request.method in ("POST", "PUT"):
        settings = _body(request)
        if "write_delay" in settings:
            state.set_write_delay(float(settings["write_delay"]))
    elif request.method != "GET":
        return _error(405, f"{request.method} not allowed on /_emulator/settings")
    return Response.json(200, {"write_delay": state.write_delay})


def _reset(state: EmulatorState, request: Request) -> Response:
    if request.method != "POST":
        return _error(405, f"{request.method} not allowed on /_emulator/reset")
    state.reset()
    return Response.json(200, {"reset": True})


_ENDPOINTS: Final[dict[str, Callable[[EmulatorState, Request], Response]]] = {
    "stats": _stats,
    "faults": _faults,
    "settings": _settings,
    "reset": _reset,
}


def handle(state: EmulatorState, request: Request, what: str) -> Response:
    endpoint = _ENDPOINTS.get(what)
    if endpoint is None:
        return _error(404, f"no admin endpoint /_emulator/{what}")
    try:
        return endpoint(state, request)
    except (TypeError, ValueError) as error:
        return _error(400, str(error))
