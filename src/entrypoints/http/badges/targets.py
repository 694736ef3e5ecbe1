"""Which counter a route of the three counter paths is about: the `target` dependency of the
badge routes and of the live updates, one function per kind of path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.types import OperationIDCreator

from domain.model import DEFAULT_COUNTER, CounterId
from entrypoints.http.controllers import CounterNameParam
from entrypoints.http.namespaced import KeyParam, NamespaceParam

DEFAULT_LABEL = "count"


@dataclass(frozen=True, slots=True)
class BadgeTarget:
    """The counter a route shows, and the label a badge gets when the query names none."""

    counter: CounterId
    label: str


def default_target() -> BadgeTarget:
    return BadgeTarget(CounterId.default(DEFAULT_COUNTER), DEFAULT_LABEL)


def named_target(name: CounterNameParam) -> BadgeTarget:
    return BadgeTarget(CounterId.default(name), name)


def namespaced_target(namespace: NamespaceParam, key: KeyParam) -> BadgeTarget:
    return BadgeTarget(CounterId(namespace, key), key)


OPERATIONS_OPT = "badge_operations"  # in a controller's `opt`: how its operation ids begin


def operation_id_of(action: str) -> OperationIDCreator:
    """`<the controller's prefix><action>`: handlers shared by the controllers of the three
    paths, their operation ids not (the controller's `opt` reaches its handlers' when they
    register)."""

    def operation_id(handler: HTTPRouteHandler, _method: Any, _path: Any) -> str:
        return f"{handler.opt[OPERATIONS_OPT]}{action}"

    return operation_id
