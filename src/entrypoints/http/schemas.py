"""Request and response bodies, mapped explicitly from domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from domain.model import INT64_MAX, INT64_MIN, Counter

REPLAYED_HEADER = "Idempotent-Replayed"  # on the recorded answer of an Idempotency-Key repeat

# The rules the domain enforces, as the OpenAPI document states them (a unit test holds them to
# domain.model.check_name and domain.idempotency). A namespace and a key follow the same rule.
COUNTER_NAME_PATTERN = "^(?:[A-Za-z0-9_.-]{3,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$"
COUNTER_NAME_MAX_LENGTH = 64
# 1-255 printable ASCII characters once the spaces and tabs around them are taken off.
IDEMPOTENCY_KEY_PATTERN = r"^[ \t]*[!-~](?:[ -~]{0,253}[!-~])?[ \t]*$"
# What `next_cursor` is made of (unpadded base64url of a counter key, 1-64 characters).
CURSOR_PATTERN = "^[A-Za-z0-9_-]{2,86}$"

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class IncrementRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional body of an increment. No body means `{"by": 1}`."""

    by: Annotated[
        int,
        msgspec.Meta(
            ge=INT64_MIN,
            le=INT64_MAX,
            description="Amount to add: a non-zero signed 64-bit integer; negative decrements.",
            examples=[1, 5, -1],
            extra_json_schema={"not": {"const": 0}},  # 0 is refused with 422
        ),
    ] = 1


class SetRequest(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[
        int,
        msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="The new value (signed 64-bit).", examples=[0]),
    ]


_NAMESPACE_DOC = msgspec.Meta(description="The counter's namespace (`default` on /counter and /counters).")
_KEY_DOC = msgspec.Meta(
    description="The counter's key within its namespace (named `name` since before namespaces).",
    examples=["default"],
)


class CounterResponse(msgspec.Struct, omit_defaults=True):
    namespace: Annotated[str, _NAMESPACE_DOC]
    name: Annotated[str, _KEY_DOC]
    count: Annotated[
        int,
        msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="Current value (signed 64-bit).", examples=[3]),
    ]
    created_at: Annotated[
        datetime | None, msgspec.Meta(description="When the counter was first written (not every store).")
    ] = None
    updated_at: Annotated[
        datetime | None, msgspec.Meta(description="When the counter was last written (not every store).")
    ] = None


class ReplacedResponse(msgspec.Struct, omit_defaults=True):
    namespace: Annotated[str, _NAMESPACE_DOC]
    name: Annotated[str, _KEY_DOC]
    count: Int64
    previous: Annotated[
        int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="The value before this request.")
    ]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CounterPage(msgspec.Struct):
    counters: list[CounterResponse]
    next_cursor: Annotated[
        str | None, msgspec.Meta(description="Pass as `cursor` for the next page; null on the last page.")
    ]


class LiveResponse(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(examples=["alive"])]


class ReadyResponse(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(examples=["ready"])]
    store: Annotated[str, msgspec.Meta(examples=["sqlite"])]
    version: Annotated[str, msgspec.Meta(description="The service's version.", examples=["0.1.0"])]


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details."""

    title: str
    status: int
    detail: str
    type: str = "about:blank"
    instance: str | None = None


def counter_response(counter: Counter) -> CounterResponse:
    return CounterResponse(
        namespace=counter.namespace,
        name=counter.key,
        count=counter.count,
        created_at=counter.created_at,
        updated_at=counter.updated_at,
    )
