"""Request and response bodies, mapped explicitly from domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from domain.model import INT64_MAX, INT64_MIN, Counter
from domain.rules import MAX_TTL_SECONDS, STEP_LIMIT, Rules

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


# Litestar leaves a bound of 0 out of the document (it tests the bound for truth): stated again,
# in the form Litestar passes on (`extra` of extra_json_schema).
_LE_0 = {"extra": {"maximum": 0}}
_GE_0 = {"extra": {"minimum": 0}}


class CreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An explicit create: the counter's start value and its rules, fixed for its lifetime."""

    key: Annotated[
        str,
        msgspec.Meta(
            description="The counter's key in the namespace.",
            pattern=COUNTER_NAME_PATTERN,
            min_length=1,
            max_length=COUNTER_NAME_MAX_LENGTH,
            examples=["visits"],
        ),
    ]
    count: Annotated[
        int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="The start value (signed 64-bit).")
    ] = 0
    min_step: (
        Annotated[
            int,
            msgspec.Meta(
                ge=-STEP_LIMIT,
                le=0,
                description="The smallest `by` an increment may add.",
                extra_json_schema=_LE_0,
            ),
        ]
        | None
    ) = None
    max_step: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=STEP_LIMIT,
                description="The largest `by` an increment may add.",
                extra_json_schema=_GE_0,
            ),
        ]
        | None
    ) = None
    resettable: Annotated[
        bool, msgspec.Meta(description="Whether anyone may set or reset it, without a token.")
    ] = False
    ttl_seconds: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS, description="Expires this long after a write.")]
        | None
    ) = None
    admin_key: Annotated[
        bool,
        msgspec.Meta(description="Mint a per-counter admin key, returned once in the answer."),
    ] = True


_NAMESPACE_DOC = msgspec.Meta(description="The counter's namespace (`default` on /counter and /counters).")
_KEY_DOC = msgspec.Meta(
    description="The counter's key within its namespace (named `name` since before namespaces).",
    examples=["default"],
)


class RulesResponse(msgspec.Struct, omit_defaults=True):
    """The rules of a counter created explicitly; an absent bound is no bound."""

    resettable: bool
    min_step: Annotated[int, msgspec.Meta(ge=-STEP_LIMIT, le=0, extra_json_schema=_LE_0)] | None = None
    max_step: Annotated[int, msgspec.Meta(ge=0, le=STEP_LIMIT, extra_json_schema=_GE_0)] | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)] | None = None


Version = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        description="Grows with every change of the counter (0: it does not exist, 1 once made);"
        ' the answer\'s `ETag` is its quoted value (`"7"`), for `If-Match`.',
        examples=[7],
    ),
]
_RULES_DOC = msgspec.Meta(description="Only on a counter created explicitly (POST on the namespace).")
_EXPIRES_DOC = msgspec.Meta(description="When it expires unless written again (only with a ttl).")


class CounterResponse(msgspec.Struct, omit_defaults=True):
    namespace: Annotated[str, _NAMESPACE_DOC]
    name: Annotated[str, _KEY_DOC]
    count: Annotated[
        int,
        msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="Current value (signed 64-bit).", examples=[3]),
    ]
    version: Version
    created_at: Annotated[
        datetime | None, msgspec.Meta(description="When the counter was first written (not every store).")
    ] = None
    updated_at: Annotated[
        datetime | None, msgspec.Meta(description="When the counter was last written (not every store).")
    ] = None
    rules: Annotated[RulesResponse | None, _RULES_DOC] = None
    expires_at: Annotated[datetime | None, _EXPIRES_DOC] = None


class CreatedResponse(msgspec.Struct, omit_defaults=True):
    namespace: Annotated[str, _NAMESPACE_DOC]
    name: Annotated[str, _KEY_DOC]
    count: Int64
    version: Version
    rules: RulesResponse
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: Annotated[datetime | None, _EXPIRES_DOC] = None
    admin_key: Annotated[
        str | None,
        msgspec.Meta(
            description="The counter's own admin key, shown this once (only its hash is kept): send"
            " it as `Authorization: Bearer <admin_key>` to set, reset or delete this counter."
        ),
    ] = None


class ReplacedResponse(msgspec.Struct, omit_defaults=True):
    namespace: Annotated[str, _NAMESPACE_DOC]
    name: Annotated[str, _KEY_DOC]
    count: Int64
    previous: Annotated[
        int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="The value before this request.")
    ]
    version: Version
    created_at: datetime | None = None
    updated_at: datetime | None = None
    rules: Annotated[RulesResponse | None, _RULES_DOC] = None
    expires_at: Annotated[datetime | None, _EXPIRES_DOC] = None


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
        version=counter.version,
        created_at=counter.created_at,
        updated_at=counter.updated_at,
        rules=rules_response(counter.rules),
        expires_at=counter.expires_at,
    )


def rules_response(rules: Rules | None) -> RulesResponse | None:
    if rules is None:
        return None
    return RulesResponse(
        resettable=rules.resettable,
        min_step=rules.min_step,
        max_step=rules.max_step,
        ttl_seconds=rules.ttl_seconds,
    )


def created_response(counter: Counter, admin_key: str | None) -> CreatedResponse:
    return CreatedResponse(
        namespace=counter.namespace,
        name=counter.key,
        count=counter.count,
        version=counter.version,
        rules=rules_response(counter.rules) or RulesResponse(resettable=False),
        created_at=counter.created_at,
        updated_at=counter.updated_at,
        expires_at=counter.expires_at,
        admin_key=admin_key,
    )
