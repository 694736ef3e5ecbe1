"""The OpenAPI document states the rules the server enforces, and the same rules as the domain.

The patterns are written once in entrypoints/http/schemas.py; these tests hold them to what
domain.model.check_name and domain.idempotency accept, so the document cannot drift from the
code, and check the document itself (bodies, bounds, answers, auth).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.errors import InvalidCounterNameError, InvalidIdempotencyKeyError
from domain.idempotency import Idempotency
from domain.model import INT64_MAX, INT64_MIN, CounterId, check_name
from entrypoints.http.compat.names import NAME_RE as COMPAT_NAME_RE
from entrypoints.http.schemas import COUNTER_NAME_PATTERN, IDEMPOTENCY_KEY_PATTERN
from tests.unit.conftest import make_app

NAMES = [
    "a", "Z", "0", "default", "visits", "a.b-c_d", "x" * 63, "x" * 64, "x" * 65, "", "-a", "_a", ".a",
    "a b", "a/b", "é", "a\n", "abc\n", "1" * 62 + "-", "A_", "a:b", "a%20", "\x00", "-ab", "_ab", ".ab",
    "...", "-" * 64, "_" * 65, "_idempotency", ".", "..", "ab", "-" + "x" * 63, "-" + "x" * 64,
]  # fmt: skip
KEYS = [
    "k", "abc", " abc", "abc ", "\tabc\t", "a b", " ", "\t", "", "x" * 255, "x" * 256, " " + "x" * 255,
    "~!@#", "a\x7f", "é", "a\x00b", "a\tb", "  x  ", "\x1f", "x" * 254 + " ",
]  # fmt: skip


def _matches(pattern: str, text: str) -> bool:
    """As JSON Schema matches (ECMA-262): its `$` is the end, not also before a final newline."""
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), text) is not None


def _name_ok(name: str) -> bool:
    try:
        check_name(name)
    except InvalidCounterNameError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_a_namespace_and_a_key_follow_the_one_rule(name: str) -> None:
    """CounterId checks both parts with check_name, and its error names the part that is wrong."""
    for namespace, key, wrong in ((name, "k", "namespace"), ("ns", name, "key")):
        if _name_ok(name):
            assert CounterId(namespace, key) == CounterId(namespace, key)
        else:
            with pytest.raises(InvalidCounterNameError, match=f"^the counter {wrong} "):
                CounterId(namespace, key)


def _key_ok(key: str) -> bool:
    try:
        Idempotency.for_increment(key, CounterId.default("c"), 1, 60.0)
    except InvalidIdempotencyKeyError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_the_documented_name_pattern_is_the_domains_rule(name: str) -> None:
    assert _matches(COUNTER_NAME_PATTERN, name) == _name_ok(name)


@pytest.mark.parametrize("key", KEYS)
def test_the_documented_idempotency_key_pattern_is_the_domains_rule(key: str) -> None:
    assert _matches(IDEMPOTENCY_KEY_PATTERN, key) == _key_ok(key)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = make_app(InMemoryCounterRepository()).openapi_schema.to_schema()
    return schema


def _operations(document: dict[str, Any], *, abacus: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """The native API's operations, or (`abacus`) those of `/abacus`, which keep Abacus's rules."""
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if ("Abacus" in op.get("tags", ())) == abacus
    ]


def test_names_keys_and_64_bit_values_are_stated(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    by = schemas["IncrementRequest"]["properties"]["by"]
    assert (by["minimum"], by["maximum"], by["format"], by["not"]) == (
        INT64_MIN,
        INT64_MAX,
        "int64",
        {"const": 0},
    )
    count = schemas["SetRequest"]["properties"]["count"]
    assert (count["minimum"], count["maximum"], count["format"]) == (INT64_MIN, INT64_MAX, "int64")
    for body in ("IncrementRequest", "SetRequest"):
        assert schemas[body]["additionalProperties"] is False
    for field in ("count", "previous"):
        assert schemas["ReplacedResponse"]["properties"][field]["maximum"] == INT64_MAX
    parameters = {
        (path, method, p["name"]): p["schema"]
        for path, method, op in _operations(document)
        for p in op.get("parameters", [])
    }
    named = {(path, name) for (path, _, name) in parameters if name in ("name", "namespace", "key")}
    assert {name for _, name in named} == {"name", "namespace", "key"}
    for (_, _, name), schema in parameters.items():
        if name in ("name", "namespace", "key"):
            assert (schema["pattern"], schema["minLength"], schema["maxLength"]) == (
                COUNTER_NAME_PATTERN,
                1,
                64,
            )
        if name == "Idempotency-Key":
            assert schema == {**schema, "type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}
            assert "oneOf" not in schema  # a header is absent or a string, never null


def test_every_error_answer_is_problem_details_with_its_headers(document: dict[str, Any]) -> None:
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    for path, method, op in _operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert response["content"] == {"application/problem+json": problem}, (path, method, status)
            if status == "503":
                assert response["headers"]["Retry-After"]["required"] is True
            if status == "401":
                assert response["headers"]["WWW-Authenticate"]["required"] is True


def test_admin_routes_need_the_bearer_token_and_say_how_they_refuse(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for _, method, op in _operations(document):
        admin = method in ("put", "delete")
        assert (op.get("security") == [{"bearerAuth": []}]) == admin
        assert {"401", "403"} <= set(op["responses"]) or not admin


@pytest.mark.parametrize("name", NAMES)
def test_abacus_documents_the_name_rule_of_the_compatible_apis(name: str) -> None:
    assert _matches(f"^{COMPAT_NAME_RE.pattern}$", name) == (COMPAT_NAME_RE.fullmatch(name) is not None)
    if COMPAT_NAME_RE.fullmatch(name):
        assert _name_ok(name)  # every name Abacus takes is one of the domain's


def test_abacus_operations_state_its_rules_and_answers(document: dict[str, Any]) -> None:
    operations = _operations(document, abacus=True)
    assert len(operations) == 23
    abacus_error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    assert document["components"]["securitySchemes"]["abacusAdminKey"]["scheme"] == "bearer"
    for path, method, op in operations:
        for parameter in op.get("parameters", []):
            if parameter["name"] in ("namespace", "key"):
                schema = parameter["schema"]
                assert (schema["pattern"], schema["minLength"], schema["maxLength"]) == (
                    f"^{COMPAT_NAME_RE.pattern}$",
                    3,
                    64,
                )
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"] in (abacus_error, problem), (path, method, status)
        admin = method == "post" and not path.startswith("/abacus/create")
        assert (op.get("security") == [{"abacusAdminKey": []}, {"abacusToken": []}]) == admin, path
        if admin:
            assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
