"""A counter's version on the wire: its `ETag`, and the `If-Match` / `If-None-Match` that name it.

The ETag of an answer about one counter is its version, strong and quoted (`"7"`); the version
of a counter that does not exist is 0. `If-Match` (on a set or a delete) takes `*` (the counter
exists) or a list of entity tags: strong comparison, so only a strong tag of a version's decimal
text matches; weak and foreign tags are well-formed and match nothing. Anything else is no
entity-tag list and is refused with a 400 naming the header; an empty list (an empty field) names
no version, so it never matches. `If-None-Match` on a read compares weakly (RFC 9110, section
13.1.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from domain.model import Counter, VersionMatch

T = TypeVar("T")

ETAG: Final = "ETag"
# `*` or a list of entity tags, as the OpenAPI document states it: what `_tags` reads, empty
# list elements included (RFC 9110, section 5.6.1, asks recipients to accept them).
_TAG_PATTERN: Final = r'(?:(?:W/)?"[\x21\x23-\x7e]*")?'
TAGS_PATTERN: Final = rf"^[ \t]*(?:\*|{_TAG_PATTERN}(?:[ \t]*,[ \t]*{_TAG_PATTERN})*)[ \t]*$"
# One element of an entity-tag list and the comma after it (or the end), with the spaces around.
_ELEMENT: Final = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)')

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description=(
            "Change the counter only if it is at one of these versions (compare-and-set): the"
            ' `ETag`s of earlier answers, e.g. `"7"`, or `*` for "it exists". `"0"` means "it does'
            ' not exist". Otherwise 412, and nothing is changed.'
        ),
        schema_extra={"pattern": TAGS_PATTERN},  # checked here: anything else is a 400
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        required=False,
        description="An `ETag` of an earlier answer: 304 without a body while the counter is at"
        " that version.",
        schema_extra={"pattern": TAGS_PATTERN},
    ),
]
ETAG_HEADERS = [
    ResponseHeader(
        name=ETAG,
        documentation_only=True,
        description='The counter\'s version, strong and quoted (`"7"`; `"0"`: it does not exist);'
        " it grows with every change. Send it back in `If-Match` to change the counter only if"
        " nobody has changed it since.",
    )
]


def etag(version: int) -> str:
    return f'"{version}"'


def tagged(
    body: T, counter: Counter, status_code: int = HTTP_200_OK, headers: Mapping[str, str] | None = None
) -> Response[T]:
    """`body`, an answer about `counter`, with its ETag (and `headers`)."""
    return Response(body, status_code=status_code, headers={ETAG: etag(counter.version), **(headers or {})})


def not_modified(if_none_match: str | None, counter: Counter) -> Response[Any] | None:
    """The 304 of a read whose If-None-Match names the counter's version, else None."""
    if if_none_match is None:
        return None
    if if_none_match.strip(" \t") == "*":
        hit = counter.version > 0
    else:
        hit = str(counter.version) in (text for _, text in _tags(if_none_match, "If-None-Match"))
    if not hit:
        return None
    return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={ETAG: etag(counter.version)})


def version_match(if_match: str | None) -> VersionMatch | None:
    """The versions an If-Match allows (None: no condition)."""
    if if_match is None:
        return None
    if if_match.strip(" \t") == "*":
        return VersionMatch(None)
    versions = {int(text) for weak, text in _tags(if_match, "If-Match") if not weak and _decimal(text)}
    return VersionMatch(frozenset(versions))


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit() and str(int(text)) == text


def _tags(value: str, header: str) -> list[tuple[bool, str]]:
    """The (weak, opaque text) of each entity tag of `value`, or a 400 naming `header`."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(value):
        element = _ELEMENT.match(value, position)
        if element is None or element.end() == position:
            raise ValidationException(
                f'{header}: not `*` or a list of entity tags (quoted, like the ETag "7")'
            )
        if element.group(2) is not None:
            tags.append((element.group(1) is not None, element.group(2)))
        position = element.end()
    return tags
