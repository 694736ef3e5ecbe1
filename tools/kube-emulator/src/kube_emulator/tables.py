"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for (NAME, DATA, AGE)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from typing import Final

from kube_emulator.statuses import Json
from kube_emulator.store import Stored

_CONFIGMAP_COLUMNS: Final = [
    {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    },
    {
        "name": "Data",
        "type": "string",
        "format": "",
        "description": "Data contains the configuration data.",
        "priority": 0,
    },
    {
        "name": "Age",
        "type": "string",
        "format": "",
        "description": "CreationTimestamp is the server time when this object was created.",
        "priority": 0,
    },
]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_duration(seconds: int) -> str:  # noqa: C901, PLR0911 - a port of Go's duration.HumanDuration
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:  # noqa: PLR2004
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:  # noqa: PLR2004
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:  # noqa: PLR2004
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:  # noqa: PLR2004
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(timestamp: str, now: float) -> str:
    if not timestamp:
        return "<unknown>"
    created = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    return human_duration(int(now - created))


def _row_object(stored: Stored, include_object: str) -> Json | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return stored.obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": stored.obj["metadata"],
    }


def configmap_table(
    items: Sequence[Stored], revision: int | None, include_object: str, list_meta: Json | None = None
) -> Json:
    now = time.time()
    rows = []
    for stored in items:
        obj = stored.obj
        row: Json = {
            "cells": [
                stored.name,
                len(obj.get("data", {})) + len(obj.get("binaryData", {})),
                _age(obj["metadata"].get("creationTimestamp", ""), now),
            ]
        }
        row_object = _row_object(stored, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: Json = dict(list_meta or {})
    if revision is not None:
        metadata["resourceVersion"] = str(revision)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": _CONFIGMAP_COLUMNS,
        "rows": rows,
    }
