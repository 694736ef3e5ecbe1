"""The bodies of Abacus's answers, as Structs for the OpenAPI document (the handlers write the
same fields, keys sorted, through answers.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from domain.model import INT64_MAX, INT64_MIN

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class ValueBody(msgspec.Struct):
    value: Int64


class ErrorBody(msgspec.Struct):
    error: str


class CreatedBody(msgspec.Struct):
    admin_key: str
    key: str
    namespace: str
    value: Int64


class InfoBody(msgspec.Struct):
    exists: bool
    expires_in: Annotated[
        float, msgspec.Meta(description="Seconds left; -2e-9 for a missing counter, -1e-9 with no expiry.")
    ]
    expires_str: Annotated[str, msgspec.Meta(description="The same, as Go writes a duration (`4032h0m0s`).")]
    full_key: str
    is_genuine: Annotated[bool, msgspec.Meta(description="True when the counter has no admin key.")]
    value: Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, description="-1 for a missing counter.")]


class DeletedBody(msgspec.Struct):
    message: str
    status: str


class Commands(msgspec.Struct):
    create: Count
    get: Count
    hit: Count
    total: Count


class StatsBody(msgspec.Struct):
    commands: Commands
    db_uptime: str
    db_version: str
    expired_keys__since_restart: str
    key_misses__since_restart: str
    shard: str
    total_keys: Count
    uptime: str
    version: str


class HealthBody(msgspec.Struct):
    status: str
    uptime: str
