"""The three patch formats kube-apiserver accepts for built-in types, applied to plain JSON values.

JSON patch error texts follow gopkg.in/evanphx/json-patch.v4 (what the server uses), because the
server forwards them verbatim in the 422 `Status` cause and clients may show them.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from kube_emulator import statuses

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH_YAML: Final = "application/apply-patch+yaml"
SUPPORTED: Final = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

_MISSING: Final = ": missing value"  # the text of json-patch's ErrMissing, appended by errors.Wrapf


class PatchError(Exception):
    """The json-patch library refused to apply an operation (answered as a 422)."""


def apply(content_type: str, target: Any, patch: Any) -> Any:
    if content_type == JSON_PATCH:
        return apply_json_patch(target, patch)
    if not isinstance(patch, dict):
        raise statuses.bad_request(
            f"error decoding patch: expected a JSON object, got {type(patch).__name__}"
        )
    if content_type == MERGE_PATCH:
        return apply_merge_patch(target, patch)
    return apply_strategic_merge_patch(target, patch)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# The only lists of a ConfigMap with a merge strategy (from the Go struct tags of ObjectMeta).
_MERGE_PRIMITIVE_LISTS: Final = {("metadata", "finalizers")}
_MERGE_KEYED_LISTS: Final = {("metadata", "ownerReferences"): "uid"}


def apply_strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """A merge patch plus the directives kubectl sends (`$patch`, `$retainKeys`, list directives).

    A ConfigMap's `data` is a plain map, so for it this is exactly a JSON merge patch.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {key: value for key, value in patch.items() if not key.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(body)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        merged = _merge_field(result.get(key), value, (*path, key))
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    _apply_list_deletions(result, patch)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {key: value for key, value in result.items() if key in retain}
    return result


def _merge_field(current: Any, value: Any, path: tuple[str, ...]) -> Any:
    """The merged value of one field; None removes the field."""
    if value is None:
        return None
    if isinstance(value, list) and path in _MERGE_PRIMITIVE_LISTS:
        return _merge_primitives(current, value)
    if isinstance(value, list) and path in _MERGE_KEYED_LISTS:
        return _merge_keyed(current, value, _MERGE_KEYED_LISTS[path])
    return apply_strategic_merge_patch(current, value, path)


def _apply_list_deletions(result: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            field = key.partition("/")[2]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in value]


def _merge_primitives(current: Any, patch: list[Any]) -> list[Any]:
    merged = list(current) if isinstance(current, list) else []
    merged.extend(item for item in patch if item not in merged)
    return merged


def _merge_keyed(current: Any, patch: list[Any], key: str) -> list[Any]:
    merged = [dict(item) for item in current] if isinstance(current, list) else []
    for item in patch:
        if not isinstance(item, dict):
            continue
        existing = next((m for m in merged if m.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            merged = [m for m in merged if m is not existing]
        elif existing is None:
            merged.append(copy.deepcopy(item))
        else:
            existing.update(apply_strategic_merge_patch(existing, item))
    return merged


def apply_json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of `document`; raises `PatchError` with json-patch v4's wording."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise statuses.bad_request(
            f"json: cannot unmarshal {_json_kind(operations)} into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(document)
    for operation in operations:
        doc = _apply_operation(doc, operation)
    return doc


def _json_kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "value"


def _apply_operation(doc: Any, operation: dict[str, Any]) -> Any:
    kind = operation.get("op")
    path = operation.get("path")
    if not isinstance(path, str):
        raise PatchError(f"{kind} operation failed to decode path: operation missing path field")
    if kind == "add":
        return _add(doc, path, copy.deepcopy(operation.get("value")), "add")
    if kind == "remove":
        container, key = _find(doc, path)
        if container is None:
            raise PatchError(f'remove operation does not apply: doc is missing path: "{path}"{_MISSING}')
        _remove(container, key, path)
        return doc
    if kind == "replace":
        return _replace(doc, path, copy.deepcopy(operation.get("value")))
    if kind in ("move", "copy"):
        return _move_or_copy(doc, kind, operation, path)
    if kind == "test":
        _test(doc, path, operation)
        return doc
    raise PatchError(f"Unexpected kind: {kind}")


def _add(doc: Any, path: str, value: Any, verb: str) -> Any:
    if path == "":
        return value
    container, key = _find(doc, path)
    if container is None:
        raise PatchError(f'{verb} operation does not apply: doc is missing path: "{path}"{_MISSING}')
    if isinstance(container, dict):
        container[key] = value
        return doc
    index = len(container) if key == "-" else _index(key, len(container) + 1)
    container.insert(index, value)
    return doc


def _replace(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    container, key = _find(doc, path)
    if container is None:
        raise PatchError(f"replace operation does not apply: doc is missing path: {path}{_MISSING}")
    if isinstance(container, dict):
        if key not in container:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}{_MISSING}")
        container[key] = value
    else:
        container[_index(key, len(container))] = value
    return doc


def _move_or_copy(doc: Any, kind: str, operation: dict[str, Any], path: str) -> Any:
    source = operation.get("from")
    if not isinstance(source, str):
        raise PatchError(f"{kind} operation failed to decode from{_MISSING}")
    container, key = _find(doc, source)
    if container is None or not _has(container, key):
        raise PatchError(f"{kind} operation does not apply: doc is missing from path: {source}{_MISSING}")
    value = _get(container, key)
    if kind == "move":
        _remove(container, key, source)
    else:
        value = copy.deepcopy(value)
    return _add(doc, path, value, kind)


def _test(doc: Any, path: str, operation: dict[str, Any]) -> None:
    expected = operation.get("value")
    if path == "":
        actual: Any = doc
    else:
        container, key = _find(doc, path)
        if container is None:
            raise PatchError(f"test operation does not apply: is missing path: {path}{_MISSING}")
        actual = _get(container, key) if _has(container, key) else None
    if actual is None and expected is None:
        return
    if actual is None or expected is None or not _json_equal(actual, expected):
        raise PatchError(f"testing value {path} failed: test failed")


def _json_equal(left: Any, right: Any) -> bool:
    """Structural JSON equality (Python's `==` would call `True == 1` equal)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _find(doc: Any, path: str) -> tuple[Any, str]:
    """The container that holds the last pointer token, and that token; (None, "") when absent."""
    if not path.startswith("/"):
        return None, ""
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None, ""
    if not isinstance(node, dict | list):
        return None, ""
    return node, tokens[-1]


def _has(container: Any, key: str) -> bool:
    if isinstance(container, dict):
        return key in container
    return key.isdigit() and int(key) < len(container)


def _get(container: Any, key: str) -> Any:
    return container[key] if isinstance(container, dict) else container[int(key)]


def _remove(container: Any, key: str, path: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise PatchError(
                f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}{_MISSING}"
            )
        del container[key]
    else:
        del container[_index(key, len(container))]


def _index(token: str, size: int) -> int:
    if not token.lstrip("-").isdigit():
        raise PatchError(f'strconv.Atoi: parsing "{token}": invalid syntax')
    index = int(token)
    if index < 0 or index >= size:
        raise PatchError(f"Unable to access invalid index: {index}: invalid index referenced")
    return index
