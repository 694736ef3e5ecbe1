"""Which counter a route of the three counter paths is about: the `target` dependency of the
badge routes and of the live updates, one function per kind of path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Controller
from litestar.di import Provide
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


_C = TypeVar("_C", bound=Controller)

# Each counter path: the prefix of its controller's name and operation ids, its path, its target,
# and the `counter` its errors name when the path names none (see errors.py).
_PATHS: tuple[tuple[str, str, Callable[..., BadgeTarget], dict[str, str]], ...] = (
    ("DefaultCounter", "/counter", default_target, {"counter": DEFAULT_COUNTER}),
    ("Counter", "/counters/{name:str}", named_target, {}),
    ("NamespaceCounter", "/namespaces/{namespace:str}/counters/{key:str}", namespaced_target, {}),
)


def on_counter_paths(
    base: type[_C], kind: str, dependencies: Callable[[Callable[..., BadgeTarget]], dict[str, Provide]]
) -> list[type[_C]]:
    """`base` (a controller whose handlers take `target`) under the default counter's path, a
    named counter's and a namespaced counter's: `DefaultCounter<kind>`, `Counter<kind>` and
    `NamespaceCounter<kind>`, each with `dependencies(its target)`."""
    return [
        type(
            f"{prefix}{kind}",
            (base,),
            {
                "__doc__": f"{kind} of the counters of `{path}`.",
                "path": path,
                "dependencies": dependencies(target),
                "opt": {**extra, OPERATIONS_OPT: prefix[0].lower() + prefix[1:]},
            },
        )
        for prefix, path, target, extra in _PATHS
    ]
