"""Routing, authentication and fault injection around the resource verbs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote

from kube_emulator import admin, discovery, statuses
from kube_emulator.configmap import RESOURCE
from kube_emulator.faults import FaultKind
from kube_emulator.messages import Request, Response
from kube_emulator.resources import ConfigMaps, Namespaces
from kube_emulator.state import EmulatorState
from kube_emulator.statuses import ApiError

logger = logging.getLogger(__name__)

WRITE_VERBS: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_HEALTH: Final = frozenset({"healthz", "livez", "readyz"})

Action = Callable[[], Response]


class ApiServerApp:
    def __init__(self, state: EmulatorState, server_address: str) -> None:
        self._state = state
        self._server_address = server_address
        self._configmaps = ConfigMaps(state.store)
        self._namespaces = Namespaces(state.store)

    def handle(self, request: Request) -> Response:
        try:
            response = self._handle(request)
        except ApiError as error:
            response = _status_response(error)
        except Exception:
            logger.exception("unexpected error on %s %s", request.method, request.path)
            response = _status_response(statuses.internal_error("the emulator failed; see its log"))
        if not request.path.startswith("/_emulator/"):
            self._state.stats.count_response(response.status, response.reason)
        return response

    def _handle(self, request: Request) -> Response:
        parts = [unquote(part) for part in request.path.strip("/").split("/")]
        head = parts[0]
        if head == "_emulator" and len(parts) == 2:  # noqa: PLR2004
            return admin.handle(self._state, request, parts[1])
        if head in _HEALTH and len(parts) == 1:
            return Response(200, b"ok", content_type="text/plain; charset=utf-8")
        self._authenticate(request)
        routed = self._resource_route(request, parts)
        if routed is None:
            self._state.stats.count_request("discovery")
            return self._discovery(request, parts)
        verb, name, action = routed
        self._state.stats.count_request(verb)
        self._state.late.before_request(is_write=verb in WRITE_VERBS)
        return self._with_faults(verb, name, request, action)

    def _authenticate(self, request: Request) -> None:
        """Anonymous requests pass, wrong credentials do not (as with anonymous auth enabled).

        kubectl (client-go) sends no token over plain http at all, so a token cannot be required.
        """
        token = self._state.token
        authorization = request.headers.get("authorization")
        if token and authorization and authorization != f"Bearer {token}":
            raise statuses.unauthorized()

    def _with_faults(self, verb: str, name: str, request: Request, action: Action) -> Response:
        kind, faults = self._state.faults.draw(is_write=verb in WRITE_VERBS)
        if kind is None:
            return action()
        self._state.stats.count_fault(kind.value)
        if kind is FaultKind.CONFLICT:
            raise statuses.conflict(RESOURCE, name or _body_name(request))
        if kind is FaultKind.TOO_MANY_REQUESTS:
            raise statuses.too_many_requests(faults.retry_after)
        if kind is FaultKind.SERVER_ERROR:
            raise statuses.internal_error("injected fault")
        if kind is FaultKind.SERVER_ERROR_LATE:  # answered now, committed afterwards
            self._state.late.hold(action, faults.late_apply, faults.late_delay)
            raise statuses.unconfirmed_write(faults.late_status)
        if kind is FaultKind.TIMEOUT_BEFORE:
            self._state.stopping.wait(faults.timeout_seconds)
            raise statuses.timeout(statuses.REQUEST_TIMEOUT)
        try:  # TIMEOUT_AFTER: the request takes effect, its answer comes too late
            return action()
        finally:
            self._state.stopping.wait(faults.timeout_seconds)

    def _resource_route(self, request: Request, parts: list[str]) -> tuple[str, str, Action] | None:
        """The Kubernetes verb, the object name and the action; None for non-resource paths."""
        if len(parts) < 3 or parts[0] != "api" or parts[1] != "v1":  # noqa: PLR2004
            return None
        method, rest = request.method, parts[2:]
        cms, nss = self._configmaps, self._namespaces
        match rest:
            case ["namespaces", namespace, "configmaps", name]:
                actions = {
                    "GET": ("get", lambda: cms.get(request, namespace, name)),
                    "PUT": ("update", lambda: cms.replace(request, namespace, name)),
                    "PATCH": ("patch", lambda: cms.patch(request, namespace, name)),
                    "DELETE": ("delete", lambda: cms.delete(request, namespace, name)),
                }
            case ["namespaces", namespace, "configmaps"]:
                name = ""
                actions = {
                    "GET": (_list_verb(request), lambda: cms.list(request, namespace)),
                    "POST": ("create", lambda: cms.create(request, namespace)),
                    "DELETE": ("deletecollection", lambda: cms.delete_collection(request, namespace)),
                }
            case ["namespaces", _, "events"] | ["events"]:
                # no events are ever recorded; `kubectl describe` lists them and expects a list
                name = ""
                actions = {"GET": ("list", lambda: _no_events(self._state.store.revision))}
            case ["configmaps"]:
                name = ""
                actions = {"GET": (_list_verb(request), lambda: cms.list(request, None))}
            case ["namespaces", name]:
                actions = {
                    "GET": ("get", lambda: nss.get(name)),
                    "DELETE": ("delete", lambda: nss.delete(name)),
                }
            case ["namespaces"]:
                name = ""
                actions = {
                    "GET": ("list", nss.list),
                    "POST": ("create", lambda: nss.create(request)),
                }
            case _:
                raise statuses.generic_not_found()
        if method not in actions:
            raise statuses.method_not_allowed()
        verb, action = actions[method]
        return verb, name, action

    def _discovery(self, request: Request, parts: list[str]) -> Response:
        if request.method != "GET":
            raise statuses.method_not_allowed()
        match parts:
            case ["api"]:
                return Response.json(200, discovery.core_api_versions(self._server_address))
            case ["api", "v1"]:
                return Response.json(200, discovery.CORE_V1_RESOURCES)
            case ["apis"]:
                return Response.json(200, discovery.API_GROUPS)
            case ["version"]:
                return Response.json(200, discovery.SERVER_VERSION)
            case ["openapi", "v3"]:
                return Response.json(200, discovery.OPENAPI_V3_ROOT)
            case ["openapi", "v3", "api", "v1"]:
                return Response.json(200, discovery.OPENAPI_V3_CORE_V1)
        # includes /openapi/v2: kubectl only needs it when the v3 document says nothing useful
        raise statuses.generic_not_found()


def _no_events(revision: int) -> Response:
    empty = {
        "kind": "EventList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(revision)},
        "items": [],
    }
    return Response.json(200, empty)


def _list_verb(request: Request) -> str:
    return "watch" if request.query.get("watch") in ("true", "1") else "list"


def _body_name(request: Request) -> str:
    """The name in a POST body, for an injected conflict on a create (best effort)."""
    try:
        name = json.loads(request.body)["metadata"]["name"]
    except (ValueError, KeyError, TypeError):
        return ""
    return name if isinstance(name, str) else ""


def _status_response(error: ApiError) -> Response:
    response = Response.json(error.code, error.status, headers=list(error.headers.items()))
    response.reason = error.reason
    return response
