"""How the `/abacus` routes appear in the OpenAPI document: their parameters with the rules the
handlers check (documented here, checked by names.py and the handlers, so that a refusal is in
Abacus's words), their answers, and JSONP beside JSON on `hit` and `get`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema
from litestar.params import PathParameter, QueryParameter

from domain.model import INT64_MAX, INT64_MIN
from entrypoints.http.abacus.schemas import ErrorBody
from entrypoints.http.badges.colors import COLOR_PATTERN
from entrypoints.http.compat.jsonp import CALLBACK_RE
from entrypoints.http.compat.names import NAME_RE
from entrypoints.http.controllers import STORE_ERRORS, problem
from entrypoints.http.openapi import DocumentedOperation

TAG = "Abacus"
JSON = "application/json"
# The counter's admin key, as `Authorization: Bearer` or as `?token=`: either one.
ABACUS_SECURITY: list[dict[str, list[str]]] = [{"abacusAdminKey": []}, {"abacusToken": []}]
_NAME = {"pattern": f"^{NAME_RE.pattern}$", "minLength": 3, "maxLength": 64}

NamespaceParam = Annotated[
    str, PathParameter(description="The counter's namespace (Abacus's rule).", schema_extra=_NAME)
]
KeyParam = Annotated[str, PathParameter(description="The counter's key (Abacus's rule).", schema_extra=_NAME)]
# `/op/key` without a namespace is the key in `default` (Abacus redirects it to `/op/key/`, whose
# empty key makes the namespace segment the key).
DefaultNamespace = Annotated[
    str | None,
    PathParameter(description="The counter's namespace; `default` when left out.", schema_extra=_NAME),
]
CallbackParam = Annotated[
    str | None,
    QueryParameter(
        required=False,
        description='Answer JSONP, `callback({"value":N});` (a JavaScript name or dotted path).',
        schema_extra={"pattern": f"^(?:{CALLBACK_RE.pattern})?$"},  # empty: plain JSON
    ),
]
# Read as text, so that a refusal is in Abacus's words; documented as the integer it must be.
INTEGER_SCHEMA = {"type": OpenAPIType.INTEGER, "format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
COLOR_SCHEMA = {"pattern": COLOR_PATTERN}


def error(description: str) -> ResponseSpec:
    """An answer `{"error": "..."}` in Abacus's words."""
    return ResponseSpec(ErrorBody, description=description, media_type=JSON, generate_examples=False)


NAME_ERROR = error(
    "A namespace or key outside 3-64 of `A-Z a-z 0-9 _ . -`, or `:HOST:` / `:PATH:` (never a valid"
    " name); the error says which and why."
)
READ_ERRORS: dict[int, ResponseSpec] = {**STORE_ERRORS, 400: NAME_ERROR}
WRITE_ERRORS: dict[int, ResponseSpec] = {
    **READ_ERRORS,
    503: problem(
        "The store is unavailable: `...:store-unavailable`, nothing was changed; `...:outcome-unknown`,"
        " the write may have been applied. Retry after `Retry-After` seconds."
    ),
    507: problem("The store has no room for a new counter; existing counters count."),
}
STEP_ERRORS: dict[int, ResponseSpec] = {
    409: problem("The result would leave the signed 64-bit range; nothing was changed."),
    403: problem(
        "The counter was made by another API with a step range that excludes this step; nothing was changed."
    ),
}
ADMIN_ERRORS: dict[int, ResponseSpec] = {
    **WRITE_ERRORS,
    400: error(
        "No token (`Authorization: Bearer <admin_key>` or `?token=`), a counter without an admin key"
        " (made by a hit, by another API, or missing), an invalid name, or an invalid `value`."
    ),
    401: error("The token is not the counter's admin key (`WWW-Authenticate: Bearer`)."),
}


@dataclass
class JsonpOperation(DocumentedOperation):
    """An operation whose 200 is JSONP (`application/javascript`) when `?callback=` is given."""

    def __post_init__(self) -> None:
        super().__post_init__()
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["application/javascript"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


def operation_id(name: str) -> Any:
    """`abacus<Name>`, then `Default` for a key's path without a namespace, then the method for a
    route that takes more than one (`create` by GET or POST)."""

    def creator(handler: HTTPRouteHandler, method: HttpMethod, path: list[str | Any]) -> str:
        parts = [str(part) for part in path]
        keyed = any("key" in part for part in parts) and not any("namespace" in part for part in parts)
        in_default = "Default" if keyed else ""
        by_method = HttpMethod(method).value.title() if len(handler.http_methods) > 1 else ""
        return f"abacus{name}{in_default}{by_method}"

    return creator
