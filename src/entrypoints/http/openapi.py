"""The OpenAPI document says what the app really takes (two Litestar 2 gaps, filled its own way).

- A msgspec Struct that refuses unknown fields is documented with `additionalProperties: false`,
  and its integer bounds exactly (Litestar writes them as floats: 2^63 - 1 became 2^63), with
  `format: int64` where they are the signed 64-bit range, so that generated clients use 64-bit
  integers. An OpenAPI schema plugin, placed before Litestar's own (which it delegates to).
- An optional body is documented as optional: Litestar marks every request body required, and
  an increment without a body is valid. An `operation_class` of the increment handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import msgspec
from litestar.openapi.spec import OpenAPIFormat, Operation, RequestBody, Schema
from litestar.plugins import OpenAPISchemaPlugin

from domain.model import INT64_MAX, INT64_MIN

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

# OpenAPIFormat lacks the formats of OpenAPI itself (int32, int64...).
_INT64 = cast("OpenAPIFormat", "int64")


class StrictStructSchemaPlugin(OpenAPISchemaPlugin):
    """Documents the Structs of request bodies (forbid_unknown_fields=True) as msgspec decodes them."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        annotation = field_definition.annotation
        return (
            not field_definition.is_union
            and isinstance(annotation, type)
            and issubclass(annotation, msgspec.Struct)
            and annotation.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        builtin = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema = builtin.to_openapi_schema(field_definition=field_definition, schema_creator=schema_creator)
        schema.additional_properties = False
        info = msgspec.inspect.type_info(field_definition.annotation)
        properties = schema.properties or {}
        for field in cast("msgspec.inspect.StructType", info).fields:
            field_type = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
            prop = properties.get(field.encode_name)
            if isinstance(field_type, msgspec.inspect.IntType) and isinstance(prop, Schema):
                _exact_bounds(prop, field_type)
        return schema


def _exact_bounds(schema: Schema, int_type: msgspec.inspect.IntType) -> None:
    # Python ints: msgspec encodes them exactly (Schema types them float, which int satisfies).
    schema.minimum = int_type.ge
    schema.maximum = int_type.le
    schema.exclusive_minimum = int_type.gt
    schema.exclusive_maximum = int_type.lt
    if (int_type.ge, int_type.le) == (INT64_MIN, INT64_MAX):
        schema.format = _INT64


@dataclass
class OptionalBodyOperation(Operation):
    """The operation of a handler whose body may be left out (`data: ... | None = None`)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
