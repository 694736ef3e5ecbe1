"""Request bodies: strict JSON, decoded one way on every route.

Litestar's own decoding is lax: it decodes a body to Python objects and converts them to the
handler's type with `strict=False` (`{"by": "1"}` and `{"by": 1.0}` became 1), ignores the
Content-Type, keeps the last of duplicate keys, and lets a deeply nested body raise
RecursionError (a 500). Here a body is decoded straight into the handler's `data` type by a
strict msgspec decoder, through Litestar's own `request_class` hook (StrictJSONRequest), and the
increment routes' lean layer decodes with the same `decode`: a body one of them takes, the
other takes with the same value.

- a body needs `Content-Type: application/json` (any parameters, such as `charset`): else 415;
- it must decode strictly as the handler's type: an integer is a JSON integer, never a string or
  a float (`1.0`), unknown fields and malformed or too deeply nested JSON are refused: 400;
- an object may not hold a key twice (msgspec keeps the last one silently): 400;
- an empty body is no body: the handler's default applies.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

JSON_MEDIA_TYPE = "application/json"
_QUOTE = b'"'
_ONE_KEY = 2  # quotes in a body with one key and no string value, as `{"by": 2}`


class InvalidBodyError(ValueError):
    """The body is not strictly the JSON its route takes."""


def is_json(content_type: str) -> bool:
    """True for `application/json`, in any letter case, with or without parameters."""
    return content_type.partition(";")[0].strip(" \t").lower() == JSON_MEDIA_TYPE


@functools.cache
def strict_decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """The decoder of one body type (msgspec decoders are strict unless told otherwise)."""
    return msgspec.json.Decoder(type_)


def decode(body: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    """`body` decoded by `decoder`, or InvalidBodyError saying why not."""
    try:
        value = decoder.decode(body)
    except msgspec.DecodeError as error:  # msgspec.ValidationError is one too
        raise InvalidBodyError(str(error)) from None
    except RecursionError:
        raise InvalidBodyError("JSON is nested too deeply") from None
    # A repeated key needs two keys, so at least four quotes: `{"by": 2}` skips the careful check.
    if body.count(_QUOTE) > _ONE_KEY and (key := _repeated_key(body)) is not None:
        raise InvalidBodyError(f"JSON object has the key {key!r} more than once")
    return value


class _RepeatedKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_repeats(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKeyError(key)
        seen.add(key)


def _repeated_key(body: bytes) -> str | None:
    """The first key that an object of `body` holds twice (escapes decoded: `"b\\u0079"` is
    `"by"`), else None. Only called on a body msgspec decoded into its type, so its nesting is
    bounded by that type."""
    try:
        json.loads(body, object_pairs_hook=_no_repeats)
    except _RepeatedKeyError as repeated:
        return repeated.key
    except (ValueError, RecursionError):  # msgspec, which accepted the body, is the judge
        return None
    return None


class ClientGoneError(HTTPException):
    """The client closed its connection before its whole body arrived: nobody reads an answer,
    and nothing failed on this side (Litestar reports it as a 500, which would log a traceback)."""

    status_code = 400
    detail = "the client left before its request body arrived"


_LITESTAR_CLIENT_GONE = "client disconnected prematurely"  # Litestar's detail for that case


class StrictJSONRequest(Request[Any, Any, Any]):
    """The app's request class: `json()`, which Litestar calls to decode a JSON body for a
    handler's `data`, decodes strictly into that type (see the module's docstring)."""

    async def body(self) -> bytes:
        try:
            return await super().body()
        except InternalServerException as error:
            if error.detail == _LITESTAR_CLIENT_GONE:
                raise ClientGoneError from None
            raise

    async def json(self) -> Any:
        body = await self.body()  # 413 beyond the limit, before anything else
        if not body:
            return None
        content_type = self.headers.get("content-type", "")
        if not is_json(content_type):
            shown = repr(content_type[:80]) if content_type else "none"
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=f"send the body as JSON with Content-Type: {JSON_MEDIA_TYPE} (this one has {shown})",
            )
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        try:
            return decode(body, strict_decoder(Any if data is None else data.annotation))
        except InvalidBodyError as error:
            raise ValidationException(f"body: {error}") from None
