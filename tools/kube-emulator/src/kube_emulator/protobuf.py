"""Decode the Kubernetes protobuf request bodies that typed Go clients send (`kubectl create configmap`).

client-go's typed clientset writes built-in objects as `application/vnd.kubernetes.protobuf`: the
magic `k8s\\x00`, then a `runtime.Unknown` envelope whose `raw` field holds the object message. Only
the decoding side is needed: those clients also accept JSON answers. Field numbers are from
k8s.io/api/core/v1/generated.proto and k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any, Final

from kube_emulator import statuses
from kube_emulator.statuses import Json

CONTENT_TYPE: Final = "application/vnd.kubernetes.protobuf"
_MAGIC: Final = b"k8s\x00"
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5

Fields = list[tuple[int, Any]]


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _varint(data, position)
            yield number, value
        elif wire_type == _BYTES:
            length, position = _varint(data, position)
            yield number, data[position : position + length]
            position += length
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            yield number, data[position : position + size]
            position += size
        else:
            raise ValueError(f"unsupported wire type {wire_type}")


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8")


def _map_entry(value: bytes) -> tuple[str, bytes]:
    entry = dict(_fields(value))
    return _text(entry.get(1, b"")), bytes(entry.get(2, b""))


def _time(value: bytes) -> str:
    seconds = dict(_fields(value)).get(1, 0)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_META_STRINGS: Final = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
_OWNER_REF_STRINGS: Final = {5: "apiVersion", 1: "kind", 3: "name", 4: "uid"}
_OWNER_REF_BOOLS: Final = {6: "controller", 7: "blockOwnerDeletion"}


def _owner_reference(value: bytes) -> Json:
    ref: Json = {}
    for number, item in _fields(value):
        if number in _OWNER_REF_STRINGS:
            ref[_OWNER_REF_STRINGS[number]] = _text(item)
        elif number in _OWNER_REF_BOOLS:
            ref[_OWNER_REF_BOOLS[number]] = bool(item)
    return ref


def _object_meta(value: bytes) -> Json:
    meta: Json = {}
    for number, item in _fields(value):
        match number:
            case 1 | 2 | 3 | 5 | 6:
                meta[_META_STRINGS[number]] = _text(item)
            case 8:
                meta["creationTimestamp"] = _time(item)
            case 11 | 12:
                key, text = _map_entry(item)
                meta.setdefault("labels" if number == 11 else "annotations", {})[key] = text.decode()  # noqa: PLR2004
            case 13:
                meta.setdefault("ownerReferences", []).append(_owner_reference(item))
            case 14:
                meta.setdefault("finalizers", []).append(_text(item))
    return meta


def _configmap(raw: bytes) -> Json:
    obj: Json = {"kind": "ConfigMap", "apiVersion": "v1"}
    for number, item in _fields(raw):
        match number:
            case 1:
                obj["metadata"] = _object_meta(item)
            case 2:
                key, text = _map_entry(item)
                obj.setdefault("data", {})[key] = text.decode()
            case 3:
                key, blob = _map_entry(item)
                obj.setdefault("binaryData", {})[key] = base64.b64encode(blob).decode()
            case 4:
                obj["immutable"] = bool(item)
    return obj


def _namespace(raw: bytes) -> Json:
    fields = dict(_fields(raw))
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": _object_meta(fields.get(1, b""))}


def _delete_options(raw: bytes) -> Json:
    options: Json = {"kind": "DeleteOptions", "apiVersion": "v1"}
    for number, item in _fields(raw):
        match number:
            case 2:
                pre = dict(_fields(item))
                options["preconditions"] = {
                    key: _text(pre[index])
                    for index, key in ((1, "uid"), (2, "resourceVersion"))
                    if index in pre
                }
            case 4:
                options["propagationPolicy"] = _text(item)
            case 5:
                options.setdefault("dryRun", []).append(_text(item))
    return options


_DECODERS: Final = {"ConfigMap": _configmap, "Namespace": _namespace, "DeleteOptions": _delete_options}


def decode(body: bytes) -> Json:
    """The JSON-shaped object inside a protobuf body; a 400 for anything else."""
    if not body.startswith(_MAGIC):
        raise statuses.bad_request("provided protobuf data does not start with the Kubernetes magic prefix")
    try:
        envelope = dict(_fields(body[len(_MAGIC) :]))
        type_meta = dict(_fields(envelope.get(1, b"")))
        kind = _text(type_meta.get(2, b""))
        decoder = _DECODERS.get(kind)
        if decoder is None:
            raise statuses.bad_request(f"protobuf bodies of kind {kind!r} are not supported by this emulator")
        return decoder(bytes(envelope.get(2, b"")))
    except (ValueError, UnicodeDecodeError) as error:
        raise statuses.bad_request(f"unable to decode protobuf body: {error}") from error
