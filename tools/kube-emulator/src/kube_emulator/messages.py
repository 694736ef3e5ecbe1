"""The request and response values passed between the HTTP plumbing and the API logic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl

from kube_emulator.statuses import Json
from kube_emulator.store import encode

JSON: Final = "application/json"


class Headers:
    """Case-insensitive request headers (a thin view, so that tests can build requests easily)."""

    def __init__(self, pairs: dict[str, str] | None = None) -> None:
        self._values = {key.lower(): value for key, value in (pairs or {}).items()}

    def get(self, name: str, default: str = "") -> str:
        return self._values.get(name.lower(), default)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    _query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        """The first value of each query parameter (parsed on first use: most requests have none)."""
        if self._query is None:
            self._query = {}
            for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                self._query.setdefault(key, value)
        return self._query

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type").split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    # a watch: chunks sent as they come, with chunked transfer encoding
    stream: Iterator[bytes] | None = None
    # what to count for this answer (the Status reason of an error, e.g. "Conflict")
    reason: str = ""

    @classmethod
    def json(cls, status: int, document: Json, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, encode(document), headers=headers or [])
