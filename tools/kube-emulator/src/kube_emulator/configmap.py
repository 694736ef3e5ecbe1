"""What kube-apiserver's ConfigMap strategy does to a request body: decode, drop, validate.

Decoding mirrors the Go JSON decoder (wrong types are a 400, unknown fields follow the
`fieldValidation` directive), validation mirrors `ValidateConfigMap` / `ValidateConfigMapUpdate`
(422 `Invalid` with the same field paths and wording).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from kube_emulator import statuses
from kube_emulator.statuses import FieldError, Json

KIND: Final = "ConfigMap"
RESOURCE: Final = "configmaps"
MAX_SIZE: Final = 1024 * 1024  # core.MaxSecretSize, shared by ConfigMaps

# Output order of the Go structs; decoding keeps only these.
_TOP_FIELDS: Final = ("kind", "apiVersion", "metadata", "immutable", "data", "binaryData")
_META_FIELDS: Final = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_OWNER_REF_FIELDS: Final = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
# Server-managed or unsupported here: never stored from a request body.
_DROPPED_META: Final = frozenset(
    {"selfLink", "generation", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"}
)

_KEY_RE: Final = re.compile(r"[-._a-zA-Z0-9]+")
_KEY_MESSAGE: Final = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
    "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_SUBDOMAIN_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    r"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_MAX_NAME: Final = 253


def decode(raw: Any, validation: str) -> tuple[Json, list[str]]:
    """Turn a request body into a ConfigMap dict in Go field order, plus `Warning` texts.

    `validation` is the `fieldValidation` query value: "Strict" rejects unknown fields with a 400,
    "Ignore" drops them silently, anything else ("Warn", the default) drops them with a warning.
    """
    if not isinstance(raw, dict):
        raise _cannot_handle(f"json: cannot unmarshal {_json_type(raw)} into Go value of type v1.ConfigMap")
    unknown: list[str] = [key for key in raw if key not in _TOP_FIELDS]
    _check_type_meta(raw)
    out: Json = {"kind": KIND, "apiVersion": "v1"}
    out["metadata"] = _decode_metadata(raw.get("metadata"), unknown)
    immutable = raw.get("immutable")
    if immutable is not None:
        if not isinstance(immutable, bool):
            raise _wrong_type(immutable, "ConfigMap.immutable", "bool")
        out["immutable"] = immutable
    data = _string_map(raw.get("data"), "ConfigMap.data")
    if data:
        out["data"] = data
    binary = _string_map(raw.get("binaryData"), "ConfigMap.binaryData")
    for value in binary.values():
        _check_base64(value)
    if binary:
        out["binaryData"] = binary
    if unknown and validation == "Strict":
        raise statuses.bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown)
        )
    warnings = [] if validation == "Ignore" else [f'unknown field "{path}"' for path in unknown]
    return out, warnings


def _check_type_meta(raw: Json) -> None:
    api_version = raw.get("apiVersion")
    if api_version not in (None, "", "v1"):
        raise statuses.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version (v1)"
        )
    kind = raw.get("kind")
    if kind not in (None, "", KIND):
        raise statuses.bad_request(
            f"the object provided is unrecognized (must be of type {KIND}): "
            f"couldn't get version/kind; json parse error: kind {kind!r} is not {KIND!r}"
        )


def _decode_metadata(raw: Any, unknown: list[str]) -> Json:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _wrong_type(raw, "ConfigMap.metadata", "v1.ObjectMeta")
    unknown.extend(f"metadata.{key}" for key in raw if key not in _META_FIELDS)
    meta: Json = {}
    for key in _META_FIELDS:
        value = raw.get(key)
        if value is None or key in _DROPPED_META:
            continue
        decoded = _decode_meta_field(key, value, unknown)
        if decoded:  # Go leaves empty strings, maps and lists out (omitempty)
            meta[key] = decoded
    return meta


def _decode_meta_field(key: str, value: Any, unknown: list[str]) -> Any:
    where = f"ConfigMap.metadata.{key}"
    if key in ("labels", "annotations"):
        return _string_map(value, where)
    if key == "finalizers":
        return _string_list(value, where)
    if key == "ownerReferences":
        return _owner_references(value, unknown)
    if not isinstance(value, str):  # the names, uid, resourceVersion, creationTimestamp
        raise _wrong_type(value, where, "string")
    return value


def _owner_references(raw: Any, unknown: list[str]) -> list[Json]:
    if not isinstance(raw, list):
        raise _wrong_type(raw, "ConfigMap.metadata.ownerReferences", "[]v1.OwnerReference")
    refs: list[Json] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _wrong_type(item, "ConfigMap.metadata.ownerReferences", "v1.OwnerReference")
        unknown.extend(
            f"metadata.ownerReferences[{index}].{key}" for key in item if key not in _OWNER_REF_FIELDS
        )
        refs.append({key: item[key] for key in _OWNER_REF_FIELDS if item.get(key) is not None})
    return refs


def _string_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _wrong_type(raw, where, "map[string]string")
    for value in raw.values():
        if not isinstance(value, str):
            raise _wrong_type(value, where, "string")
    return dict(raw)


def _string_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list):
        raise _wrong_type(raw, where, "[]string")
    for value in raw:
        if not isinstance(value, str):
            raise _wrong_type(value, where, "string")
    return list(raw)


def _check_base64(value: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _cannot_handle(f"illegal base64 data: {error}") from error


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _wrong_type(value: Any, where: str, go_type: str) -> statuses.ApiError:
    return _cannot_handle(
        f"json: cannot unmarshal {_json_type(value)} into Go struct field {where} of type {go_type}"
    )


def _cannot_handle(why: str) -> statuses.ApiError:
    return statuses.bad_request(f'{KIND} in version "v1" cannot be handled as a {KIND}: {why}')


def data_size(obj: Json) -> int:
    """What the 1 MiB limit counts: the bytes of the values only (keys are free), as in Go."""
    total = sum(len(value.encode()) for value in obj.get("data", {}).values())
    return total + sum(len(base64.b64decode(value)) for value in obj.get("binaryData", {}).values())


def validate(obj: Json, *, creating: bool) -> None:
    """`ValidateConfigMap`: name, data keys, the 1 MiB total; raises a 422 `Invalid`."""
    meta = obj["metadata"]
    name = meta.get("name", "")
    errors: list[FieldError] = []
    if not name:
        if not (creating and meta.get("generateName")):
            errors.append(
                FieldError("FieldValueRequired", "metadata.name", "name or generateName is required")
            )
    else:
        errors.extend(_name_errors(name))
    data: dict[str, str] = obj.get("data", {})
    binary: dict[str, str] = obj.get("binaryData", {})
    for key in data:
        errors.extend(_key_errors(f"data[{key}]", key))
        if key in binary:
            errors.append(
                FieldError("FieldValueInvalid", f"data[{key}]", "duplicate of key present in binaryData", key)
            )
    for key in binary:
        errors.extend(_key_errors(f"binaryData[{key}]", key))
    if data_size(obj) > MAX_SIZE:
        # Go passes field.NewPath(""), which prints as "[]": the error is about the whole object
        errors.append(FieldError("FieldValueTooLong", "[]", f"must have at most {MAX_SIZE} bytes"))
    if errors:
        raise statuses.invalid(KIND, name, errors)


def validate_update(old: Json, new: Json) -> None:
    """`ValidateConfigMapUpdate`: an immutable ConfigMap keeps its data and stays immutable."""
    if not old.get("immutable"):
        return
    errors: list[FieldError] = []
    message = "field is immutable when `immutable` is set"
    if not new.get("immutable"):
        errors.append(FieldError("FieldValueForbidden", "immutable", message))
    errors.extend(
        FieldError("FieldValueForbidden", field, message)
        for field in ("data", "binaryData")
        if old.get(field) != new.get(field)
    )
    if errors:
        raise statuses.invalid(KIND, new["metadata"]["name"], errors)


def _name_errors(name: str) -> list[FieldError]:
    errors = []
    if len(name) > _MAX_NAME:
        errors.append(
            FieldError(
                "FieldValueInvalid", "metadata.name", f"must be no more than {_MAX_NAME} characters", name
            )
        )
    if not _SUBDOMAIN_RE.fullmatch(name):
        errors.append(FieldError("FieldValueInvalid", "metadata.name", _SUBDOMAIN_MESSAGE, name))
    return errors


def _key_errors(path: str, key: str) -> list[FieldError]:
    messages = []
    if len(key) > _MAX_NAME:
        messages.append(f"must be no more than {_MAX_NAME} characters")
    if not _KEY_RE.fullmatch(key):
        messages.append(_KEY_MESSAGE)
    if key == ".":
        messages.append("must not be '.'")
    elif key == "..":
        messages.append("must not be '..'")
    elif key.startswith(".."):
        messages.append("must not start with '..'")
    return [FieldError("FieldValueInvalid", path, message, key) for message in messages]


def is_valid_name(name: str) -> bool:
    return len(name) <= _MAX_NAME and _SUBDOMAIN_RE.fullmatch(name) is not None
