"""Property-based tests of manifest parsing (TOML and JSON): whatever the input, the parser
returns a Manifest or raises ManifestError listing problems — never anything else — and a
manifest it accepts survives a round trip through ``to_dict`` in both formats.

Profiles: tests/conftest.py ("ci" by default; HYPOTHESIS_PROFILE=night for long runs).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from plughost.core.manifest import (
    Manifest,
    manifest_from_dict,
    manifest_from_own_dict,
    parse_manifest,
)
from plughost.errors import ManifestError

# -- strategies ----------------------------------------------------------------------------

IDS = st.one_of(st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z"), st.text(max_size=30))
VERSIONS = st.one_of(
    st.builds("{}.{}.{}".format, st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)),
    st.sampled_from(["1.0.0-alpha.1", "2.0.0+build", "1.0", "v1.2.3", "01.0.0", "", "x"]),
    st.text(max_size=20),
)
RANGES = st.one_of(
    st.sampled_from(["^1.0.0", "~2.1", ">=1 <2", "1.x || 3", "*", "1.0.0 - 2.0.0", ">>1",
                     "^", "1.2.3beta", ""]),
    st.text(alphabet="^~<>=|-.x* 0123456789", max_size=20),
)
SCOPES = st.one_of(
    st.sampled_from(["fs:read:/tmp", "fs:write:data", "net:example.com:443", "net:*",
                     "storage:kv", "events:emit:a.b", "commands:execute:x.y", "process:spawn",
                     "disk:x", "fs:read:", ":", "net:[::1]:99999"]),
    st.text(max_size=30),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
SCHEMAS = st.one_of(
    st.just({"type": "object", "properties": {"channel": {"type": "string"}}}),
    st.just({"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}),
    st.just({"$ref": "#/definitions/a", "definitions": {"a": {"type": "object"}}}),
    st.just({"type": "nonsense"}),
    st.dictionaries(st.sampled_from(["type", "properties", "required", "$ref", "items",
                                     "enum", "minimum"]), JSON_VALUES, max_size=4),
)

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(max_size=30),
    "description": st.text(max_size=50),
    "author": st.one_of(st.text(max_size=20), JSON_VALUES),
    "license": st.text(max_size=10),
    "homepage": st.one_of(st.just("https://example.com"), st.text(max_size=20)),
    "tags": st.one_of(st.lists(st.text(max_size=10), max_size=4), JSON_VALUES),
    "type": st.text(max_size=10),
    "runtime": st.sampled_from(["python", "process", "wasm", "grpc", "native", "", "pyton"]),
    "entry": st.one_of(st.just("mod:Plugin"), st.just("run.sh"), st.text(max_size=20)),
    "host": RANGES,
    "platforms": st.lists(st.sampled_from(["linux", "darwin", "windows", "x"]), max_size=3),
    "dependencies": st.one_of(st.dictionaries(IDS, RANGES, max_size=3),
                              st.lists(st.text(max_size=10), max_size=3), JSON_VALUES),
    "optional-dependencies": st.dictionaries(IDS, RANGES, max_size=2),
    "activation": st.lists(st.sampled_from(["startup", "command:x", "event:y.z",
                                            "extension:e", "lazy", ""]), max_size=3),
    "permissions": st.one_of(st.lists(SCOPES, max_size=4), JSON_VALUES),
    "config": st.one_of(st.fixed_dictionaries({}, optional={
        "schema": SCHEMAS, "defaults": st.dictionaries(st.text(max_size=8), JSON_VALUES,
                                                       max_size=3)}), JSON_VALUES),
    "limits": st.one_of(st.fixed_dictionaries({}, optional={
        "timeout": st.one_of(st.integers(-5, 10**6), st.text(max_size=10),
                             st.sampled_from(["5s", "2 days", "1m"])),
        "memory": st.one_of(st.integers(-5, 2**40), st.sampled_from(["64MB", "5 parsecs"])),
        "fuel": st.integers(-5, 2**64)}), JSON_VALUES),
    "provides": JSON_VALUES,
    "x-anything": JSON_VALUES,
    "unknownKey": JSON_VALUES,
    # Arcade's shape
    "pluginType": st.text(max_size=10),
    "entryPoint": st.text(max_size=20),
    "configSchema": SCHEMAS,
    "resources": JSON_VALUES,
}


@st.composite
def manifest_dicts(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        data["id"] = draw(IDS)
    data["version"] = draw(VERSIONS)
    keys = draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=8, unique=True))
    for key in keys:
        data[key] = draw(FIELDS[key])
    if draw(st.booleans()):
        data.setdefault("name", "N")
        data.setdefault("entry", "mod:Plugin")
    return data


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _toml(value: Any) -> str:
    """A TOML rendering (inline tables), or ValueError where TOML has no equivalent."""
    if value is None:
        raise ValueError("TOML has no null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError("TOML integers are 64-bit")
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value).replace("inf", "inf")
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise ValueError("TOML strings are Unicode scalar values")
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise ValueError(type(value))


def _to_toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{_toml_key(k)} = {_toml(v)}\n" for k, v in data.items())


def _parse_or_problems(text: str | bytes, fmt: str) -> Manifest | None:
    try:
        return parse_manifest(text, format=fmt)  # type: ignore[arg-type]
    except ManifestError as exc:
        assert exc.code == "manifest.invalid"
        assert exc.problems, "a refusal lists at least one problem"
        for problem in exc.problems:
            assert problem.code and problem.message
        return None


# -- properties ----------------------------------------------------------------------------


@given(manifest_dicts())
@example({"id": "a", "name": "A", "version": "1.0.0", "entry": "m:P",
          "config": {"schema": {"$ref": "file:///etc/passwd"}}})
def test_json_manifests_parse_or_list_problems(data: dict[str, Any]) -> None:
    manifest = _parse_or_problems(json.dumps(data), "json")
    if manifest is not None:
        again = json.dumps(manifest.to_dict())
        assert parse_manifest(again, format="json") == manifest
        assert manifest_from_dict(manifest.to_dict()) == manifest
        # What the discovery cache does with an entry it wrote: rebuild without validating.
        assert manifest_from_own_dict(json.loads(again)) == manifest


@given(manifest_dicts())
def test_toml_manifests_parse_or_list_problems(data: dict[str, Any]) -> None:
    try:
        document = _to_toml_document(data)
    except ValueError:
        return  # no TOML spelling (null, 65-bit integer): the JSON test covers it
    manifest = _parse_or_problems(document, "toml")
    if manifest is not None:
        try:
            again = _to_toml_document(manifest.to_dict())
        except ValueError:
            return
        assert parse_manifest(again, format="toml") == manifest


@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)),
       st.sampled_from(["toml", "json"]))
@example(b"\xff\xfe{}", "json")
@example("[" * 5000 + "]" * 5000, "json")
@example('{"id": ' * 900 + "1" + "}" * 900, "json")
@example("a = " + "[" * 5000 + "]" * 5000, "toml")
@example('id = "a"\nid = "b"\n', "toml")
@example('{"id": "a", "id": "b"}', "json")
@example('{"version": NaN}', "json")
def test_arbitrary_bytes_never_escape_as_anything_but_manifest_error(
    data: bytes | str, fmt: str
) -> None:
    _parse_or_problems(data, fmt)


@given(JSON_VALUES)
def test_manifest_from_any_json_value_raises_only_manifest_error(value: Any) -> None:
    try:
        manifest_from_dict(value, source="fuzz")
    except ManifestError as exc:
        assert exc.problems
