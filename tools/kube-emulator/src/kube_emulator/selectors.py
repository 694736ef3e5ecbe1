"""`labelSelector` and `fieldSelector` query parameters, compiled to predicates on stored objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from kube_emulator import statuses
from kube_emulator.store import Stored

Predicate = Callable[[Stored], bool]

_SET_RE: Final = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQUALITY_RE: Final = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|=|!=)\s*([^\s!=<>(),]*)\s*$")
_FIELDS: Final = ("metadata.name", "metadata.namespace")


def _everything(_: Stored) -> bool:
    return True


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


def _labels(stored: Stored) -> dict[str, str]:
    labels: dict[str, str] = stored.obj["metadata"].get("labels", {})
    return labels


def _label_requirement(text: str) -> Predicate:
    equality = _EQUALITY_RE.match(text)
    if equality:
        key, operator, value = equality.groups()
        if operator == "!=":
            return lambda stored: _labels(stored).get(key) != value
        return lambda stored: _labels(stored).get(key) == value
    found = _SET_RE.match(text)
    if not found:
        raise statuses.bad_request(f"unable to parse requirement: {text.strip()!r}")
    negated, key, operator, values_text = found.groups()
    if operator is None:
        if negated:
            return lambda stored: key not in _labels(stored)
        return lambda stored: key in _labels(stored)
    values = {value.strip() for value in values_text.split(",")}
    if operator == "in":
        return lambda stored: _labels(stored).get(key) in values
    return lambda stored: _labels(stored).get(key) not in values


def label_selector(text: str | None) -> Predicate:
    if not text:
        return _everything
    requirements = [_label_requirement(part) for part in _split_top_level(text)]
    return lambda stored: all(requirement(stored) for requirement in requirements)


def _field_value(stored: Stored, field: str) -> str:
    return stored.name if field == "metadata.name" else stored.namespace


def _field_requirement(text: str) -> Predicate:
    found = _EQUALITY_RE.match(text)
    if not found:
        raise statuses.bad_request(f"invalid selector: '{text}'; can't understand '{text}'")
    field, operator, value = found.groups()
    if field not in _FIELDS:
        raise statuses.bad_request(f'field label not supported: "{field}"')
    if operator == "!=":
        return lambda stored: _field_value(stored, field) != value
    return lambda stored: _field_value(stored, field) == value


def field_selector(text: str | None) -> Predicate:
    if not text:
        return _everything
    requirements = [_field_requirement(part) for part in text.split(",") if part.strip()]
    return lambda stored: all(requirement(stored) for requirement in requirements)


def combined(labels: str | None, fields: str | None) -> Predicate:
    by_label, by_field = label_selector(labels), field_selector(fields)
    if by_label is _everything:
        return by_field
    if by_field is _everything:
        return by_label
    return lambda stored: by_label(stored) and by_field(stored)
