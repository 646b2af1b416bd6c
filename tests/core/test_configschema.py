"""The one config rule (core.configschema, stdlib only) agrees with the reference validator
(jsonschema, draft 2020-12) on which configs are valid and which keyword refuses them."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plughost.core.configschema import (
    check_config,
    effective_config,
    validate_config,
    violations,
)
from plughost.errors import ConfigInvalid

CASES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "object", "properties": {"unit": {"enum": ["C", "F"]}}},
     [{"unit": "C"}, {"unit": "K"}, {}, {"unit": 1}]),
    ({"type": "integer", "minimum": 0, "maximum": 10, "multipleOf": 2},
     [0, 4, 5, -2, 12, 4.0, 4.5, True, "4"]),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
     [0, 0.5, 1, 0.0001, -1]),
    ({"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^a"},
     ["ab", "a", "abcde", "ba", "aé", 3]),
    ({"type": ["string", "null"]}, ["x", None, 1, False]),
    ({"const": 1}, [1, 1.0, True, "1", [1]]),
    ({"enum": [[1, 2], {"a": 1}, False]}, [[1, 2], [2, 1], {"a": 1}, {"a": True}, 0, False]),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3,
      "uniqueItems": True}, [[1], [], [1, 2, 3, 4], [1, 1], [1, True], ["x"], [1.0, 1]]),
    ({"prefixItems": [{"type": "string"}], "items": False}, [["a"], ["a", 1], [1], []]),
    ({"contains": {"type": "string"}, "minContains": 2, "maxContains": 3},
     [["a", "b"], ["a"], ["a", "b", "c", "d"], [1, 2]]),
    ({"type": "object", "required": ["a"], "additionalProperties": False,
      "properties": {"a": {"type": "boolean"}}, "patternProperties": {"^x-": {}}},
     [{"a": True}, {}, {"a": True, "b": 1}, {"a": True, "x-y": 1}, {"a": 1}]),
    ({"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 1,
      "maxProperties": 2, "propertyNames": {"maxLength": 3}},
     [{"a": 1}, {}, {"a": 1, "b": 2, "c": 3}, {"long": 1}, {"a": "x"}]),
    ({"dependentRequired": {"a": ["b"]}, "dependentSchemas": {"c": {"required": ["d"]}}},
     [{"a": 1, "b": 1}, {"a": 1}, {"c": 1}, {"c": 1, "d": 1}]),
    ({"anyOf": [{"type": "string"}, {"minimum": 3}]}, ["x", 4, 2, None]),
    ({"oneOf": [{"type": "integer"}, {"minimum": 3}]}, [1, 4, 3.5, "x"]),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}], "not": {"const": 2}}, [1, 2, 3, 4, 0]),
    ({"if": {"properties": {"kind": {"const": "a"}}}, "then": {"required": ["x"]},
      "else": {"required": ["y"]}}, [{"kind": "a", "x": 1}, {"kind": "a"}, {"y": 1}, {}]),
    ({"properties": {"a": {"type": "integer"}}, "allOf": [{"properties": {"b": {}}}],
      "unevaluatedProperties": False}, [{"a": 1}, {"a": 1, "b": 2}, {"c": 1}]),
    ({"prefixItems": [{}], "unevaluatedItems": False}, [[1], [1, 2], []]),
    ({"$defs": {"port": {"type": "integer", "maximum": 65535}},
      "properties": {"p": {"$ref": "#/$defs/port"}, "q": {"$ref": "#port"}},
      "$id": "https://example.com/root", "$comment": "anchor below",
      "dependentSchemas": {"z": {"$anchor": "port", "type": "object"}}},
     [{"p": 80}, {"p": 70000}, {"p": "x"}, {"q": {}}, {"q": 1}]),
    ({"type": "object", "additionalProperties": {"$ref": "#"}},
     [{}, {"a": {}}, {"a": 1}, {"a": {"b": {"c": []}}}]),
    ({"format": "email"}, ["a@b", "nope"]),
    ({"format": "date"}, ["2026-12-03", "2026-13-01", "2026-1-1", 3]),
    ({"format": "ipv4"}, ["127.0.0.1", "256.0.0.1", "::1"]),
    ({"format": "ipv6"}, ["::1", "127.0.0.1"]),
    ({"format": "uuid"}, ["6f1b2a9e-1f0c-4c2e-9d7e-0a1b2c3d4e5f", "6f1b2a9e"]),
    ({"format": "regex"}, ["^a+$", "(unclosed"]),
    ({"format": "json-pointer"}, ["", "/a/b~0", "a", "/~2"]),
    ({"format": "date-time"},
     ["2026-12-03T17:20:00Z", "2026-12-03 17:20:00", "2026-12-03T25:00:00Z"]),
]


def _reference(schema: dict[str, Any], instance: Any) -> set[str]:
    checker = jsonschema.FormatChecker(formats=["email", "date", "ipv4", "ipv6", "uuid",
                                                "regex", "json-pointer", "date-time"])
    validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
    return {e.validator for e in validator.iter_errors(instance)}  # type: ignore[misc]


@pytest.mark.parametrize(("schema", "instances"), CASES, ids=lambda v: str(v)[:40])
def test_agrees_with_the_reference_validator(schema: dict[str, Any],
                                             instances: list[Any]) -> None:
    for instance in instances:
        ours = {v.keyword for v in violations(instance, schema)}
        assert ours == _reference(schema, instance), (schema, instance)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["", "a", "C", "F", "K", "abc"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["unit", "a", "b", "n"]), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(instance=_json, case=st.sampled_from(CASES))
def test_agrees_on_arbitrary_values(instance: Any, case: tuple[dict[str, Any], Any]) -> None:
    schema = case[0]
    ours = {v.keyword for v in violations(instance, schema)}
    assert ours == _reference(schema, instance), (schema, instance)


def test_problems_carry_json_paths_codes_and_no_secret() -> None:
    schema = {"type": "object", "properties": {
        "token": {"type": "string", "x-secret": True, "minLength": 40},
        "server": {"properties": {"port": {"type": "integer"}}}}}
    problems = validate_config({"token": "hunter2", "server": {"port": "x"}}, schema)
    assert [(p.path, p.code) for p in problems] == [("$.server.port", "config.type"),
                                                    ("$.token", "config.minLength")]
    assert "hunter2" not in repr(problems)


def test_a_reference_outside_the_schema_is_one_problem_and_nothing_is_fetched() -> None:
    problems = validate_config({"a": 1}, {"properties": {"a": {"$ref": "http://x/s.json"}}})
    assert [p.code for p in problems] == ["config.schema"]


def test_effective_config_and_check_config() -> None:
    schema = {"type": "object", "properties": {
        "unit": {"enum": ["C", "F"], "default": "C"},
        "server": {"properties": {"port": {"type": "integer", "default": 80}}}}}
    assert effective_config(schema, {"server": {"host": "h"}}, {"unit": "F"}) == {
        "unit": "F", "server": {"port": 80, "host": "h"}}
    check_config("thermo", schema, {"unit": "C"})
    with pytest.raises(ConfigInvalid) as info:
        check_config("thermo", schema, {"unit": "K"})
    assert info.value.phase == "config" and "plughost config set thermo" in info.value.message
