"""The OpenAPI document says what the app really takes (two Litestar 2 gaps, filled its own way).

- A msgspec Struct that refuses unknown fields is documented with `additionalProperties: false`,
  and its integer bounds exactly (Litestar writes them as floats: 2^63 - 1 became 2^63), with
  `format: int64` where they are the signed 64-bit range, so that generated clients use 64-bit
  integers. An OpenAPI schema plugin, placed before Litestar's own (which it delegates to).
  A field's `extra_json_schema` of `{"not": {...}}` is documented too (`by` is never 0).
- Every operation's `operation_class` (DocumentedOperation) states what the answers carry: a
  header parameter is a string or absent, never `null`; a 503 carries `Retry-After` and a 401
  `WWW-Authenticate`. An optional body is documented as optional (OptionalBodyOperation):
  Litestar marks every request body required, and an increment without a body is valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import msgspec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from litestar.plugins import OpenAPISchemaPlugin

from domain.model import INT64_MAX, INT64_MIN

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

# OpenAPIFormat lacks the formats of OpenAPI itself (int32, int64...).
_INT64 = cast("OpenAPIFormat", "int64")


class StrictStructSchemaPlugin(OpenAPISchemaPlugin):
    """Documents the Structs of bodies as msgspec decodes them: request bodies
    (forbid_unknown_fields=True) take no other field, and integer bounds are exact in all."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        annotation = field_definition.annotation
        return (
            not field_definition.is_union
            and isinstance(annotation, type)
            and issubclass(annotation, msgspec.Struct)
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        builtin = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema = builtin.to_openapi_schema(field_definition=field_definition, schema_creator=schema_creator)
        if field_definition.annotation.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        info = msgspec.inspect.type_info(field_definition.annotation)
        properties = schema.properties or {}
        for field in cast("msgspec.inspect.StructType", info).fields:
            field_type = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
            prop = properties.get(field.encode_name)
            if isinstance(field_type, msgspec.inspect.IntType) and isinstance(prop, Schema):
                _exact_bounds(prop, field_type)
            extra = field.type.extra_json_schema if isinstance(field.type, msgspec.inspect.Metadata) else None
            if extra and "not" in extra and isinstance(prop, Schema):
                prop.schema_not = Schema(**extra["not"])
        return schema


def _exact_bounds(schema: Schema, int_type: msgspec.inspect.IntType) -> None:
    # Python ints: msgspec encodes them exactly (Schema types them float, which int satisfies).
    schema.minimum = int_type.ge
    schema.maximum = int_type.le
    schema.exclusive_minimum = int_type.gt
    schema.exclusive_maximum = int_type.lt
    if (int_type.ge, int_type.le) == (INT64_MIN, INT64_MAX):
        schema.format = _INT64


# The headers that answers of a status always carry.
_RESPONSE_HEADERS = {
    "503": {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$"),
            required=True,
            description="Seconds to wait before trying again.",
        )
    },
    "401": {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING),
            required=True,
            description="`Bearer`: send the admin token as `Authorization: Bearer <token>`.",
        )
    },
}


@dataclass
class DocumentedOperation(Operation):
    """An operation as the app answers it (see the module's docstring); every handler's class."""

    def __post_init__(self) -> None:
        for parameter in self.parameters or ():
            if isinstance(parameter, Parameter) and parameter.param_in in ("header", "query"):
                parameter.schema = _without_null(parameter.schema)
            if isinstance(parameter, Parameter) and isinstance(parameter.schema, Schema):
                _whole_bounds(parameter.schema)
        for status, response in (self.responses or {}).items():
            headers = _RESPONSE_HEADERS.get(status)
            if headers and isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), **headers}


@dataclass
class OptionalBodyOperation(DocumentedOperation):
    """The operation of a handler whose body may be left out (`data: ... | None = None`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


def _whole_bounds(schema: Schema) -> None:
    # Litestar writes the bounds of an integer parameter as floats (1000.0).
    if schema.type == OpenAPIType.INTEGER:
        for bound in ("minimum", "maximum"):
            value = getattr(schema, bound)
            if isinstance(value, float) and value.is_integer():
                setattr(schema, bound, int(value))


def _without_null(schema: Schema | Any) -> Schema | Any:
    """`str | None` of an optional header or query parameter is documented as a string: absent
    is how it is left out (`null` cannot be sent)."""
    if not isinstance(schema, Schema) or not schema.one_of:
        return schema
    kept = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
    if len(kept) != 1 or not isinstance(kept[0], Schema):
        return schema
    merged = dataclasses.replace(schema, one_of=None)
    for field in dataclasses.fields(Schema):
        value = getattr(kept[0], field.name)
        if value is not None and getattr(merged, field.name) is None:
            setattr(merged, field.name, value)
    return merged
