from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from plughost.core.manifest import (
    FIELDS,
    MANIFEST_FILES,
    MAX_MANIFEST_BYTES,
    PROBLEM_CODES,
    RUNTIMES,
    Limits,
    Manifest,
    Provides,
    load_manifest,
    manifest_from_dict,
    manifest_from_own_dict,
    manifest_from_plain,
    manifest_json_schema,
    parse_manifest,
    read_manifest_data,
    validate_manifest_file,
)
from plughost.core.version import ANY, Version, VersionRange
from plughost.errors import ManifestError, PlughostError, Problem

REPO = Path(__file__).resolve().parents[2]

MINIMAL: dict[str, Any] = {"id": "hello", "version": "1.0.0", "entry": "hello:Plugin"}

# The Arcade manifest exactly as design seed 003 ("资源清单") shows it.
ARCADE_SEED: dict[str, Any] = {
    "name": "slack-notify",
    "version": "1.0.0",
    "description": "Slack notification plugin",
    "author": "Arcade Team",
    "homepage": "https://example.com",
    "repository": "https://github.com/example/slack-plugin",
    "pluginType": "notify",
    "entryPoint": "slack.so",
    "dependencies": [],
    "configSchema": {
        "type": "object",
        "properties": {
            "webhook_url": {"type": "string", "description": "Slack webhook URL"},
            "channel": {"type": "string", "description": "Slack channel"},
        },
        "required": ["webhook_url"],
    },
    "defaultConfig": {"channel": "#general"},
    "icon": "https://example.com/icon.png",
    "tags": ["notify", "slack", "communication"],
    "minVersion": "1.0.0",
    "resources": {"cpu": "100m", "memory": "128Mi", "disk": "50Mi"},
}

FULL_TOML = """
id = "lyrics"
name = "Lyrics"
version = "1.2.0-rc.1+build.7"
description = "Finds lyrics"
author = "Ann"
license = "MIT"
homepage = "https://example.com"
repository = "https://example.com/git"
documentation = "https://example.com/docs"
icon = "icon.png"
tags = ["music", "lyrics"]
type = "lyrics-provider"
runtime = "python"
entry = "lyrics.main:Plugin"
host = ">=0.1 <1"
platforms = ["linux"]
activation = ["command:lyrics.search", "event:song.changed"]
permissions = ["net:api.example.com:443", "storage", "process:spawn", "fs:read:/data"]
x-team = "music"

[dependencies]
music-source = "^2.0"

[optional-dependencies]
cache = "~1.1"

[provides]
extension-points = ["music.lyrics"]
commands = ["lyrics.search"]
events = ["lyrics.found"]
channels = ["lyrics.stream"]

[config.schema]
type = "object"
properties = { api_key = { type = "string" } }

[config.defaults]
api_key = ""

[limits]
timeout = "500ms"
memory = "128Mi"
cpu = 2
fuel = 1000000
open-files = 32
output = "1MB"
x-gpu = true

[resources]
cpu = "100m"
"""


def problems_of(data: Any) -> list[tuple[str, str]]:
    """(path, code) of every problem ``manifest_from_dict`` reports for ``data``."""
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(data)
    return [(p.path, p.code) for p in info.value.problems]


def text_problems(text: str | bytes, fmt: str) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, format=fmt)  # type: ignore[arg-type]
    return [(p.path, p.code) for p in info.value.problems]


def with_(**changes: Any) -> dict[str, Any]:
    out = dict(MINIMAL)
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def make_plugin(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "plugin"
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------
# The happy paths
# ------------------------------------------------------------------------------------------


def test_minimal_manifest_gets_the_documented_defaults() -> None:
    m = manifest_from_dict(MINIMAL)
    assert m.id == "hello"
    assert m.name == "hello"
    assert m.version == Version("1.0.0")
    assert m.runtime == "python"
    assert m.host == ANY
    assert m.activation == ("startup",)
    assert not m.is_lazy
    assert m.dependencies == {}
    assert m.limits == Limits()
    assert m.limits.declared() == frozenset()
    assert m.config_schema is None
    assert m.extras == {}


def test_full_native_toml_fills_every_field() -> None:
    m = parse_manifest(FULL_TOML, format="toml")
    assert (m.id, m.name, str(m.version)) == ("lyrics", "Lyrics", "1.2.0-rc.1+build.7")
    assert m.version.prerelease == ("rc", 1)
    assert (m.description, m.author, m.license) == ("Finds lyrics", "Ann", "MIT")
    assert m.homepage == "https://example.com"
    assert m.repository == "https://example.com/git"
    assert m.documentation == "https://example.com/docs"
    assert m.icon == "icon.png"
    assert m.tags == ("music", "lyrics")
    assert m.type == "lyrics-provider"
    assert m.entry == "lyrics.main:Plugin"
    assert m.host.contains("0.5.0") and not m.host.contains("1.0.0")
    assert m.platforms == ("linux",)
    assert set(m.dependencies) == {"music-source"}
    assert m.dependencies["music-source"].contains("2.3.0")
    assert not m.dependencies["music-source"].contains("3.0.0")
    assert m.optional_dependencies["cache"].contains("1.1.5")
    assert m.provides == Provides(
        extension_points=("music.lyrics",),
        commands=("lyrics.search",),
        events=("lyrics.found",),
        channels=("lyrics.stream",),
    )
    assert m.activation == ("command:lyrics.search", "event:song.changed")
    assert m.is_lazy
    assert m.permissions == (
        "net:api.example.com:443", "storage", "process:spawn", "fs:read:/data",
    )
    assert m.config_schema == {"type": "object", "properties": {"api_key": {"type": "string"}}}
    assert m.config_defaults == {"api_key": ""}
    assert m.limits == Limits(timeout=0.5, memory=128 * 2**20, cpu=2.0, fuel=1_000_000,
                              open_files=32, output=1_000_000)
    assert m.limits.declared() == {"timeout", "memory", "cpu", "fuel", "open_files", "output"}
    assert m.resources.cpu == "100m" and m.resources.memory is None
    assert m.extras == {"x-team": "music", "limits.x-gpu": True}


def test_json_may_use_the_native_keys() -> None:
    text = json.dumps({**MINIMAL, "optional-dependencies": {"a": "^1"},
                       "limits": {"open-files": 8}})
    m = parse_manifest(text, format="json")
    assert {k: str(v) for k, v in m.optional_dependencies.items()} == {"a": "^1"}
    assert m.limits.open_files == 8


def test_camel_case_spellings_of_multi_word_keys_are_accepted() -> None:
    m = manifest_from_dict({**MINIMAL, "optionalDependencies": {"a": "*"},
                            "provides": {"extensionPoints": ["x"]},
                            "limits": {"openFiles": 4}})
    assert m.optional_dependencies == {"a": ANY}
    assert m.provides.extension_points == ("x",)
    assert m.limits.open_files == 4


def test_manifest_from_dict_accepts_any_mapping() -> None:
    assert manifest_from_dict(MappingProxyType(MINIMAL)).id == "hello"


def test_manifest_from_dict_accepts_read_only_nested_values() -> None:
    first = manifest_from_dict({**MINIMAL, "config": {"defaults": {"a": [1]}}})
    again = manifest_from_dict({**MINIMAL, "tags": ("x", "y"),
                                "config": {"defaults": first.config_defaults}})
    assert again.tags == ("x", "y")
    assert again.config_defaults == {"a": [1]}


def test_manifest_from_dict_copies_its_input() -> None:
    data = {**MINIMAL, "config": {"defaults": {"nested": {"a": 1}}}}
    m = manifest_from_dict(data)
    data["config"]["defaults"]["nested"]["a"] = 2
    assert m.config_defaults["nested"]["a"] == 1


def test_name_defaults_to_id_and_empty_name_too() -> None:
    assert manifest_from_dict({**MINIMAL, "name": ""}).name == "hello"


def test_utf8_byte_order_mark_is_accepted() -> None:
    data = b"\xef\xbb\xbf" + json.dumps(MINIMAL).encode()
    assert parse_manifest(data, format="json").id == "hello"


# ------------------------------------------------------------------------------------------
# Arcade normalisation
# ------------------------------------------------------------------------------------------


def test_arcade_seed_manifest_is_normalised_into_the_model() -> None:
    m = parse_manifest(json.dumps(ARCADE_SEED), format="json")
    assert m.id == "slack-notify" and m.name == "slack-notify"
    assert m.type == "notify"
    assert m.entry == "slack.so"
    assert m.runtime == "native"  # a shared library: the native runtime, never PATH
    assert str(m.host) == ">=1.0.0"
    assert m.host.contains("1.0.0") and m.host.contains("7.2.0")
    assert not m.host.contains("0.9.9")
    assert m.config_schema is not None and m.config_schema["required"] == ["webhook_url"]
    assert m.config_defaults == {"channel": "#general"}
    assert m.tags == ("notify", "slack", "communication")
    assert m.icon == "https://example.com/icon.png"
    assert m.homepage == "https://example.com"
    assert m.repository == "https://github.com/example/slack-plugin"
    assert (m.resources.cpu, m.resources.memory, m.resources.disk) == ("100m", "128Mi", "50Mi")
    assert m.dependencies == {}
    assert m.description == "Slack notification plugin" and m.author == "Arcade Team"


def test_arcade_dependencies_as_a_list_of_ids_specs_and_objects() -> None:
    m = manifest_from_dict({
        **ARCADE_SEED,
        "dependencies": [
            "http-client",
            "auth@^2.1",
            {"id": "store", "version": ">=3"},
            {"name": "queue", "version": "~1.4"},
            {"id": "metrics"},
        ],
    })
    assert m.dependencies["http-client"] == ANY
    assert str(m.dependencies["auth"]) == "^2.1"
    assert m.dependencies["store"].contains("3.5.0")
    assert m.dependencies["queue"].contains("1.4.9") and not m.dependencies["queue"].contains(
        "1.5.0")
    assert m.dependencies["metrics"] == ANY
    assert list(m.dependencies) == ["http-client", "auth", "store", "queue", "metrics"]


def test_arcade_dependencies_as_a_map() -> None:
    m = manifest_from_dict({**ARCADE_SEED, "dependencies": {"http-client": "^1.0"}})
    assert {k: str(v) for k, v in m.dependencies.items()} == {"http-client": "^1.0"}
    assert isinstance(m.dependencies["http-client"], VersionRange)


def test_native_dependency_may_be_a_table_with_version() -> None:
    m = parse_manifest('id="a"\nversion="1.0.0"\nentry="a:b"\n'
                       '[dependencies]\nhttp = { version = "^2" }\n', format="toml")
    assert {k: str(v) for k, v in m.dependencies.items()} == {"http": "^2"}


def test_arcade_entry_point_in_module_attribute_form_means_python() -> None:
    m = manifest_from_dict({"name": "p", "version": "1.0.0", "entryPoint": "p.main:Plugin"})
    assert m.runtime == "python"


@pytest.mark.parametrize("entry", ["plugin.wasm", "plugin.wat"])
def test_a_wasm_entry_without_runtime_means_wasm(entry: str) -> None:
    assert manifest_from_dict(with_(entry=entry)).runtime == "wasm"


def test_explicit_runtime_beats_inference() -> None:
    m = manifest_from_dict({**ARCADE_SEED, "runtime": "process", "entryPoint": "./notify"})
    assert m.runtime == "process"


def test_arcade_name_used_as_id_must_be_a_valid_id() -> None:
    data = {**ARCADE_SEED, "name": "Slack Notify"}
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(data)
    (problem,) = info.value.problems
    assert (problem.path, problem.code) == ("name", "manifest.id")
    assert "Add an 'id'" in problem.message and "'slack-notify'" in problem.message


def test_an_id_lets_arcade_name_be_free_text() -> None:
    m = manifest_from_dict({**ARCADE_SEED, "id": "slack-notify", "name": "Slack Notify"})
    assert (m.id, m.name) == ("slack-notify", "Slack Notify")


def test_problems_in_arcade_keys_are_reported_under_the_key_as_written() -> None:
    data = {**ARCADE_SEED, "configSchema": {"type": "objekt"}, "minVersion": "one"}
    # In the order they appear in the file.
    assert problems_of(data) == [
        ("configSchema.type", "manifest.config"),
        ("minVersion", "manifest.version"),
    ]


# ------------------------------------------------------------------------------------------
# Every problem code, with its path
# ------------------------------------------------------------------------------------------

DICT_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("missing id and name", with_(id=None), [("id", "manifest.required")]),
    ("missing version", with_(version=None), [("version", "manifest.required")]),
    ("missing entry", with_(entry=None), [("entry", "manifest.required")]),
    ("empty entry", with_(entry="  "), [("entry", "manifest.required")]),
    ("name not a string", with_(name=3), [("name", "manifest.type")]),
    ("tags not a list", with_(tags="a,b"), [("tags", "manifest.type")]),
    ("tag not a string", with_(tags=["a", 2]), [("tags[1]", "manifest.type")]),
    ("provides not a table", with_(provides=["x"]), [("provides", "manifest.type")]),
    ("provides item empty", with_(provides={"commands": [""]}),
     [("provides.commands[0]", "manifest.type")]),
    ("top level extras must be JSON", with_(**{"x-nan": float("nan")}),
     [("x-nan", "manifest.type")]),
    ("bad id", with_(id="Hello World"), [("id", "manifest.id")]),
    ("id too long", with_(id="a" * 65), [("id", "manifest.id")]),
    ("id starts with dash", with_(id="-a"), [("id", "manifest.id")]),
    ("id with trailing newline", with_(id="hello\n"), [("id", "manifest.id")]),
    ("bad dependency id", with_(dependencies={"Bad": "*"}), [("dependencies.Bad", "manifest.id")]),
    ("bad version", with_(version="1.0"), [("version", "manifest.version")]),
    ("version not a string", with_(version=1), [("version", "manifest.type")]),
    ("bad host range", with_(host=">>1"), [("host", "manifest.range")]),
    ("bad dependency range", with_(dependencies={"http-client": "^^2"}),
     [("dependencies.http-client", "manifest.range")]),
    ("bad optional range", with_(optional_dependencies={"a": "nope"}),
     [("optional-dependencies.a", "manifest.range")]),
    ("list dependency with empty range", with_(dependencies=["http@"]),
     [("dependencies[0]", "manifest.range")]),
    ("misspelt runtime", with_(runtime="pyton"), [("runtime", "manifest.runtime")]),
    ("runtime that is not a name", with_(runtime="Node JS"), [("runtime", "manifest.runtime")]),
    ("python entry without colon", with_(entry="hello.py"), [("entry", "manifest.entry")]),
    ("python entry with keyword", with_(entry="class:Plugin"), [("entry", "manifest.entry")]),
    ("python entry with dotted attribute", with_(entry="a:b.c"), [("entry", "manifest.entry")]),
    ("python entry with trailing newline", with_(entry="a:b\n"), [("entry", "manifest.entry")]),
    ("process entry with bad quoting", with_(runtime="process", entry='run "x'),
     [("entry", "manifest.entry")]),
    ("wasm entry not wasm", with_(runtime="wasm", entry="plugin.so"),
     [("entry", "manifest.entry")]),
    ("wasm entry absolute", with_(runtime="wasm", entry="/abs/p.wasm"),
     [("entry", "manifest.entry")]),
    ("wasm entry escapes", with_(runtime="wasm", entry="../p.wasm"),
     [("entry", "manifest.entry")]),
    ("grpc unix address not absolute", with_(runtime="grpc", entry="unix:plugin.sock"),
     [("entry", "manifest.entry")]),
    ("platform not os-arch", with_(platforms=["Linux x86"]),
     [("platforms", "manifest.platform")]),
    ("alternative platform not os-arch",
     with_(alternatives=[{"runtime": "wasm", "entry": "p.wasm", "platforms": ["any thing"]}]),
     [("alternatives[0].platforms", "manifest.platform")]),
    ("grpc port out of range", with_(runtime="grpc", entry="localhost:70000"),
     [("entry", "manifest.entry")]),
    ("self dependency", with_(dependencies={"hello": "*"}),
     [("dependencies.hello", "manifest.dependency")]),
    ("both required and optional", with_(dependencies={"a": "*"}, optional_dependencies={"a": "*"}),
     [("optional-dependencies.a", "manifest.dependency")]),
    ("duplicate in dependency list", with_(dependencies=["a", "a@^1"]),
     [("dependencies.a", "manifest.duplicate_key")]),
    ("unknown activation", with_(activation=["lazy"]), [("activation[0]", "manifest.activation")]),
    ("activation without target", with_(activation="command:"),
     [("activation", "manifest.activation")]),
    ("empty activation", with_(activation=[]), [("activation", "manifest.activation")]),
    ("manual with others", with_(activation=["manual", "startup"]),
     [("activation", "manifest.activation")]),
    ("unknown permission kind", with_(permissions=["disk:read:/x"]),
     [("permissions[0]", "manifest.permission")]),
    ("permission needs target", with_(permissions=["fs:read"]),
     [("permissions[0]", "manifest.permission")]),
    ("permission empty target", with_(permissions=["net:"]),
     [("permissions[0]", "manifest.permission")]),
    ("permission with space", with_(permissions=["fs:read:/my data"]),
     [("permissions[0]", "manifest.permission")]),
    ("memory not a size", with_(limits={"memory": "lots"}), [("limits.memory", "manifest.limit")]),
    ("memory zero", with_(limits={"memory": 0}), [("limits.memory", "manifest.limit")]),
    ("memory unknown unit", with_(limits={"memory": "5 parsecs"}),
     [("limits.memory", "manifest.limit")]),
    ("negative timeout", with_(limits={"timeout": -1}), [("limits.timeout", "manifest.limit")]),
    ("timeout bool", with_(limits={"timeout": True}), [("limits.timeout", "manifest.limit")]),
    ("timeout infinite", with_(limits={"timeout": float("inf")}),
     [("limits.timeout", "manifest.limit")]),
    ("cpu bad unit", with_(limits={"cpu": "2 days"}), [("limits.cpu", "manifest.limit")]),
    ("fuel zero", with_(limits={"fuel": 0}), [("limits.fuel", "manifest.limit")]),
    ("open-files float", with_(limits={"open-files": 1.5}),
     [("limits.open-files", "manifest.limit")]),
    ("schema type unknown", with_(config={"schema": {"type": "objekt"}}),
     [("config.schema.type", "manifest.config")]),
    ("schema type a table", with_(config={"schema": {"type": {"object": 1}}}),
     [("config.schema.type", "manifest.config")]),
    ("schema type list holding a table", with_(config={"schema": {"type": ["object", {}]}}),
     [("config.schema.type", "manifest.config")]),
    ("schema properties not object", with_(config={"schema": {"properties": ["a"]}}),
     [("config.schema.properties", "manifest.config")]),
    ("schema required not list", with_(config={"schema": {"required": "a"}}),
     [("config.schema.required", "manifest.config")]),
    ("schema requires impossible property",
     with_(config={"schema": {"properties": {}, "required": ["a"],
                              "additionalProperties": False}}),
     [("config.schema.required", "manifest.config")]),
    ("schema not an object", with_(config={"schema": True}), [("config.schema", "manifest.type")]),
    # A reference outside the schema would make the host read a file or fetch a URL.
    ("schema $ref to a local file",
     with_(config={"schema": {"properties": {"a": {"$ref": "file:///etc/passwd"}}}}),
     [("config.schema.properties.a.$ref", "manifest.config")]),
    ("schema $ref to a URL",
     with_(config={"schema": {"allOf": [{"$ref": "http://169.254.169.254/latest"}]}}),
     [("config.schema.allOf[0].$ref", "manifest.config")]),
    ("schema relative $ref against a remote $id",
     with_(config={"schema": {"$id": "http://10.0.0.1/s/", "$ref": "x.json"}}),
     [("config.schema.$ref", "manifest.config")]),
    ("schema $dynamicRef to a URL",
     with_(config={"schema": {"$defs": {"a": {"$dynamicRef": "https://e.test/m#meta"}}}}),
     [("config.schema.$defs.a.$dynamicRef", "manifest.config")]),
    ("schema $ref to a bundled meta-schema",
     with_(config={"schema": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}),
     [("config.schema.$ref", "manifest.config")]),
    ("schema $schema of another draft",
     with_(config={"schema": {"$schema": "http://json-schema.org/draft-07/schema#"}}),
     [("config.schema.$schema", "manifest.config")]),
    ("schema $ref not a string", with_(config={"schema": {"$ref": ["#"]}}),
     [("config.schema.$ref", "manifest.config")]),
    ("defaults not an object", with_(config={"defaults": [1]}),
     [("config.defaults", "manifest.type")]),
    ("unknown top-level key", with_(descripton="x"), [("descripton", "manifest.unknown_key")]),
    ("unknown nested key", with_(limits={"open_files": 3}),
     [("limits.open_files", "manifest.unknown_key")]),
    ("unknown key in dependency object", with_(dependencies=[{"id": "a", "ver": "1"}]),
     [("dependencies[0].ver", "manifest.unknown_key")]),
    ("entry and entryPoint", with_(entryPoint="hello:Plugin"),
     [("entryPoint", "manifest.conflict")]),
    ("host and minVersion", with_(host=">=1", minVersion="1.0.0"),
     [("minVersion", "manifest.conflict")]),
    ("config.schema and configSchema", with_(config={"schema": {}}, configSchema={}),
     [("configSchema", "manifest.conflict")]),
    ("dependency object id and name differ", with_(dependencies=[{"id": "a", "name": "b"}]),
     [("dependencies[0]", "manifest.conflict")]),
    ("dependency object without id", with_(dependencies=[{"version": "1"}]),
     [("dependencies[0]", "manifest.required")]),
    ("top level not an object", [], [("", "manifest.type")]),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in DICT_CASES],
                         ids=[c[0] for c in DICT_CASES])
def test_each_problem_is_reported_with_its_path_and_code(
    data: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems_of(data) == expected


TEXT_CASES: list[tuple[str, str | bytes, str, list[tuple[str, str]]]] = [
    ("toml syntax", 'id = "a"\nversion = ', "toml", [("", "manifest.syntax")]),
    ("json nested 30k deep", "[" * 30_000 + "]" * 30_000, "json",
     [("", "manifest.too_deep")]),
    ("json nested 900 deep (parses, too deep to walk)", '{"x-a": ' * 900 + "1" + "}" * 900,
     "json", [("", "manifest.too_deep")]),
    ("toml nested 5000 deep", "x-a = " + "[" * 5000 + "]" * 5000, "toml",
     [("", "manifest.too_deep")]),
    ("toml nested 65 deep", "x-a = " + "[" * 65 + "]" * 65, "toml",
     [("", "manifest.too_deep")]),
    ("json syntax", '{"id": "a",}', "json", [("", "manifest.syntax")]),
    ("json NaN", '{"id": NaN}', "json", [("", "manifest.syntax")]),
    ("toml duplicate key", 'id = "a"\nid = "b"\n', "toml", [("", "manifest.duplicate_key")]),
    ("toml duplicate table", "[limits]\nfuel = 1\n[limits]\ncpu = 1\n", "toml",
     [("", "manifest.duplicate_key")]),
    ("json duplicate key", '{"id": "a", "id": "b", "version": "1.0.0", "entry": "a:b"}', "json",
     [("id", "manifest.duplicate_key")]),
    ("json nested duplicate key",
     '{"id": "a", "version": "1.0.0", "entry": "a:b", "limits": {"fuel": 1, "fuel": 2}}', "json",
     [("limits.fuel", "manifest.duplicate_key")]),
    ("json duplicate inside a list",
     '{"id": "a", "version": "1.0.0", "entry": "a:b", "dependencies": [{"id": "x", "id": "y"}]}',
     "json", [("dependencies[0].id", "manifest.duplicate_key")]),
    ("not utf-8", b'id = "caf\xe9"\n', "toml", [("", "manifest.encoding")]),
    ("toml datetime in defaults",
     'id = "a"\nversion = "1.0.0"\nentry = "a:b"\n[config.defaults]\nwhen = 2024-01-01\n',
     "toml", [("config.defaults.when", "manifest.type")]),
    ("toml nan limit", 'id = "a"\nversion = "1.0.0"\nentry = "a:b"\n[limits]\ntimeout = nan\n',
     "toml", [("limits.timeout", "manifest.limit")]),
    ("unknown format", "{}", "yaml", [("", "manifest.format")]),
]


@pytest.mark.parametrize(("text", "fmt", "expected"), [c[1:] for c in TEXT_CASES],
                         ids=[c[0] for c in TEXT_CASES])
def test_each_text_level_problem_is_reported(
    text: str | bytes, fmt: str, expected: list[tuple[str, str]]
) -> None:
    assert text_problems(text, fmt) == expected


def test_oversized_manifest_is_refused_before_parsing() -> None:
    # Not valid TOML at all: a parse attempt would report manifest.syntax instead.
    text = "this is not toml " * (MAX_MANIFEST_BYTES // 16)
    assert len(text) > MAX_MANIFEST_BYTES
    assert text_problems(text, "toml") == [("", "manifest.too_large")]
    assert text_problems(text.encode(), "json") == [("", "manifest.too_large")]


def test_size_limit_counts_bytes_not_characters() -> None:
    # 30,000 three-byte characters: under the limit in characters, over it in bytes.
    text = '# ' + "€" * 30_000 + '\nid = "a"\n'
    assert len(text) < MAX_MANIFEST_BYTES < len(text.encode())
    assert text_problems(text, "toml") == [("", "manifest.too_large")]


def test_a_manifest_at_the_size_limit_is_parsed() -> None:
    body = 'id = "a"\nversion = "1.0.0"\nentry = "a:b"\n'
    text = body + "#" * (MAX_MANIFEST_BYTES - len(body) - 1) + "\n"
    assert len(text.encode()) == MAX_MANIFEST_BYTES
    assert parse_manifest(text, format="toml").id == "a"


FILE_CODES = {"manifest.missing", "manifest.ambiguous", "manifest.format", "manifest.unreadable"}


def test_every_problem_code_is_documented_and_exercised_by_these_tests() -> None:
    exercised = {code for _, _, expected in DICT_CASES for _, code in expected}
    exercised |= {code for *_, expected in TEXT_CASES for _, code in expected}
    exercised |= {"manifest.too_large"} | FILE_CODES  # tested just above / below
    assert exercised == set(PROBLEM_CODES)


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "id": "Bad Id", "version": "1.0", "entry": "x", "runtime": "pyton",
        "limits": {"memory": "lots", "timeout": 0},
        "dependencies": {"http-client": "^^2"},
        "permissions": ["fs:read", "nett:x"], "activation": ["lazy"], "descripton": "x",
    }
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(data, source="bad/plugin.toml")
    err = info.value
    assert sorted((p.path, p.code) for p in err.problems) == sorted([
        ("descripton", "manifest.unknown_key"),
        ("id", "manifest.id"),
        ("version", "manifest.version"),
        ("runtime", "manifest.runtime"),
        ("dependencies.http-client", "manifest.range"),
        ("activation[0]", "manifest.activation"),
        ("permissions[0]", "manifest.permission"),
        ("permissions[1]", "manifest.permission"),
        ("limits.memory", "manifest.limit"),
        ("limits.timeout", "manifest.limit"),
    ])
    assert isinstance(err, PlughostError) and isinstance(err, ValueError)
    assert err.code == "manifest.invalid"
    assert err.source == "bad/plugin.toml"
    assert "10 problem(s) in bad/plugin.toml" in str(err)
    assert err.to_dict()["details"]["problems"][0]["code"] == err.problems[0].code
    assert all(isinstance(p, Problem) for p in err.problems)


def test_error_names_the_plugin_when_its_id_is_valid() -> None:
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(with_(version="x"))
    assert info.value.plugin_id == "hello"


@pytest.mark.parametrize(("key", "suggestion"), [
    ("descripton", "description"),
    ("entry_point", "entryPoint"),
    ("optional_dependencies", "optional-dependencies"),
    ("Version", "version"),
])
def test_unknown_keys_come_with_a_suggestion(key: str, suggestion: str) -> None:
    data = {**MINIMAL, key: "x"}
    if key == "Version":
        data = {"id": "a", "entry": "a:b", "version": "1.0.0", key: "1.0.0"}
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(data)
    messages = [p.message for p in info.value.problems if p.code == "manifest.unknown_key"]
    assert messages and f"did you mean {suggestion!r}?" in messages[0]


def test_unknown_permission_kind_comes_with_a_suggestion() -> None:
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(with_(permissions=["fs:raed:/data"]))
    assert "did you mean 'fs:read'?" in info.value.problems[0].message


def test_bad_id_message_suggests_a_valid_one() -> None:
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(with_(id="My Plugin!"))
    assert "'my-plugin'" in info.value.problems[0].message


# ------------------------------------------------------------------------------------------
# Values: activation, permissions, limits, ids
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "lazy"), [
    ("startup", False),
    (["startup", "command:x"], False),
    ("manual", True),
    (["command:lyrics.search"], True),
    (["event:song.*"], True),
    (["extension:music.lyrics", "event:a"], True),
])
def test_is_lazy_follows_activation(activation: Any, lazy: bool) -> None:
    m = manifest_from_dict(with_(activation=activation))
    assert m.is_lazy is lazy
    assert m.activation == ((activation,) if isinstance(activation, str) else tuple(activation))


@pytest.mark.parametrize("scope", [
    "fs:read:/data", "fs:write:/tmp/x", "net:*.example.com", "net:api.example.com:443",
    "storage", "storage:cache", "events:emit:lyrics.*", "events:subscribe:*",
    "commands:execute:lyrics.search", "commands:register:x", "process:spawn",
    "process:spawn:/usr/bin/ffmpeg", "env:HOME",
])
def test_valid_permission_scopes_are_accepted(scope: str) -> None:
    assert manifest_from_dict(with_(permissions=[scope])).permissions == (scope,)


@pytest.mark.parametrize(("value", "expected"), [
    (1024, 1024),
    ("1024", 1024),
    ("128Mi", 128 * 2**20),
    ("64MB", 64 * 10**6),
    ("1G", 10**9),
    ("1.5Gi", int(1.5 * 2**30)),
    ("512 KiB", 512 * 1024),
    ("2k", 2000),
    ("10b", 10),
])
def test_memory_sizes(value: Any, expected: int) -> None:
    assert manifest_from_dict(with_(limits={"memory": value})).limits.memory == expected


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3.0), (0.25, 0.25), ("500ms", 0.5), ("2s", 2.0), ("1.5m", 90.0), ("1h", 3600.0),
    ("7", 7.0), (".5s", 0.5),
])
def test_durations(value: Any, expected: float) -> None:
    m = manifest_from_dict(with_(limits={"timeout": value, "cpu": value}))
    assert m.limits.timeout == expected and m.limits.cpu == expected


@pytest.mark.parametrize("plugin_id", ["a", "0", "a.b_c-d", "x" * 64, "9lives"])
def test_valid_ids(plugin_id: str) -> None:
    assert manifest_from_dict(with_(id=plugin_id)).id == plugin_id


@pytest.mark.parametrize("entry", ["localhost:50051", "127.0.0.1:1", "[::1]:50051",
                                   "plugins.internal.example.com:443"])
def test_grpc_addresses(entry: str) -> None:
    assert manifest_from_dict(with_(runtime="grpc", entry=entry)).entry == entry


@pytest.mark.parametrize("entry", ["./bin/notify --stdio", "python3 main.py", "slack.so"])
def test_process_command_lines(entry: str) -> None:
    assert manifest_from_dict(with_(runtime="process", entry=entry)).entry == entry


def test_runtimes_are_the_contract_ones() -> None:
    assert RUNTIMES == ("python", "process", "wasm", "grpc", "native")
    assert MANIFEST_FILES == ("plugin.toml", "manifest.json")


# ------------------------------------------------------------------------------------------
# x- keys, round trip, the model
# ------------------------------------------------------------------------------------------


def test_x_keys_are_kept_in_extras_and_not_checked() -> None:
    m = manifest_from_dict({**MINIMAL, "x-owner": {"team": "music", "pager": [1, 2]},
                            "provides": {"x-internal": True}})
    assert m.extras == {"x-owner": {"team": "music", "pager": [1, 2]},
                        "provides.x-internal": True}


def test_to_dict_is_native_json_and_round_trips() -> None:
    m = parse_manifest(FULL_TOML, format="toml")
    d = m.to_dict()
    text = json.dumps(d)  # JSON-serialisable
    assert d["version"] == "1.2.0-rc.1+build.7"
    assert d["dependencies"] == {"music-source": "^2.0"}
    assert d["optional-dependencies"] == {"cache": "~1.1"}
    assert d["provides"]["extension-points"] == ["music.lyrics"]
    assert d["limits"] == {"timeout": 0.5, "memory": 134217728, "cpu": 2.0, "fuel": 1000000,
                           "open-files": 32, "output": 1000000, "x-gpu": True}
    assert d["x-team"] == "music"
    back = manifest_from_dict(json.loads(text))
    assert back == m
    assert back.to_dict() == d


def test_to_dict_of_an_arcade_manifest_is_native() -> None:
    m = manifest_from_dict(ARCADE_SEED)
    d = m.to_dict()
    assert "pluginType" not in d and d["type"] == "notify"
    assert d["host"] == ">=1.0.0" and d["runtime"] == "native" and d["entry"] == "slack.so"
    assert d["config"]["defaults"] == {"channel": "#general"}
    assert manifest_from_dict(d) == m


def test_to_dict_leaves_defaults_out() -> None:
    assert manifest_from_dict(MINIMAL).to_dict() == {
        "id": "hello", "name": "hello", "version": "1.0.0", "entry": "hello:Plugin",
    }


def test_to_dict_keeps_an_empty_schema_apart_from_no_schema() -> None:
    # An empty config schema (anything goes) is not "no schema"; it must read back as itself,
    # or a manifest served from the discovery cache would differ from the one parsed.
    m = manifest_from_dict({**MINIMAL, "config": {"schema": {}}, "params-schema": {}})
    assert m.config_schema == {} and m.params_schema == {}
    data = m.to_dict()
    assert data["config"] == {"schema": {}} and data["params-schema"] == {}
    assert manifest_from_dict(data) == m == manifest_from_own_dict(json.loads(json.dumps(data)))
    assert manifest_from_dict(MINIMAL).config_schema is None


def test_manifest_is_frozen_and_hashable() -> None:
    m = manifest_from_dict(MINIMAL)
    with pytest.raises(AttributeError):
        m.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.dependencies["x"] = ANY  # type: ignore[index]
    assert {m, manifest_from_dict(MINIMAL)} == {m}


def test_manifest_can_be_built_directly_with_defaults() -> None:
    m = Manifest(id="x", name="X", version=Version("1.0.0"), entry="x:P")
    assert m.activation == ("startup",) and m.host == ANY and m.dependencies == {}


def test_field_table_covers_the_native_keys() -> None:
    keys = {f.key for f in FIELDS}
    assert keys == {
        "id", "name", "version", "description", "author", "license", "homepage", "repository",
        "documentation", "icon", "tags", "type", "runtime", "entry", "host", "platforms",
        "alternatives", "dependencies", "optional-dependencies", "provides", "activation",
        "permissions", "config", "limits", "resources", "params-schema",
    }
    limits = next(f for f in FIELDS if f.key == "limits")
    assert [c.key for c in limits.children] == [
        "timeout", "memory", "cpu", "fuel", "open-files", "output", "processes"]


# ------------------------------------------------------------------------------------------
# Files and folders
# ------------------------------------------------------------------------------------------

TOML = 'id = "p"\nversion = "1.0.0"\nentry = "{entry}"\n'


def test_load_folder_with_plugin_toml_and_module(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": TOML.format(entry="p:Plugin"), "p.py": ""})
    assert load_manifest(root).entry == "p:Plugin"
    assert load_manifest(str(root)).id == "p"
    assert validate_manifest_file(root) == []


def test_load_folder_with_package_and_dotted_module(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {
        "plugin.toml": TOML.format(entry="pkg.sub:create"),
        "pkg/__init__.py": "", "pkg/sub/__init__.py": "",
    })
    assert load_manifest(root).entry == "pkg.sub:create"
    root2 = make_plugin(tmp_path / "two", {"plugin.toml": TOML.format(entry="pkg.mod:create"),
                                           "pkg/__init__.py": "", "pkg/mod.py": ""})
    assert load_manifest(root2).entry == "pkg.mod:create"


def test_entry_module_missing_from_folder(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": TOML.format(entry="p.main:Plugin"), "p.py": ""})
    (problem,) = validate_manifest_file(root)
    assert (problem.path, problem.code) == ("entry", "manifest.entry")
    assert "p/main.py or p/main/__init__.py" in problem.message


def test_entry_module_is_not_imported(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": TOML.format(entry="boom:Plugin"),
                                  "boom.py": "raise SystemExit('imported!')\n"})
    assert load_manifest(root).entry == "boom:Plugin"
    assert "boom" not in sys.modules


def test_load_manifest_file_uses_its_folder_as_root(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": TOML.format(entry="p:Plugin")})
    assert [p.code for p in validate_manifest_file(root / "plugin.toml")] == ["manifest.entry"]


def test_load_arcade_manifest_json_folder(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"manifest.json": json.dumps(ARCADE_SEED)})
    # entryPoint "slack.so" is a native library, looked for in the folder (never on PATH)
    assert [(p.path, p.code) for p in validate_manifest_file(root)] == [
        ("entryPoint", "manifest.entry")]
    (root / "slack.so").write_bytes(b"\x7fELF")
    manifest = load_manifest(root)
    assert (manifest.id, manifest.runtime) == ("slack-notify", "native")


def test_wasm_entry_must_exist_in_folder(tmp_path: Path) -> None:
    data = json.dumps({**MINIMAL, "runtime": "wasm", "entry": "build/p.wasm"})
    root = make_plugin(tmp_path, {"manifest.json": data})
    assert [(p.path, p.code) for p in validate_manifest_file(root)] == [
        ("entry", "manifest.entry")]
    (root / "build").mkdir()
    (root / "build" / "p.wasm").write_bytes(b"\0asm\1\0\0\0")
    assert load_manifest(root).runtime == "wasm"


def test_folder_without_manifest(tmp_path: Path) -> None:
    (problem,) = validate_manifest_file(tmp_path)
    assert problem.code == "manifest.missing"
    assert "plugin.toml or manifest.json" in problem.message


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    assert [p.code for p in validate_manifest_file(tmp_path / "nope")] == ["manifest.missing"]


def test_folder_with_both_manifests_is_ambiguous(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": TOML.format(entry="p:P"),
                                  "manifest.json": json.dumps(MINIMAL), "p.py": ""})
    assert [p.code for p in validate_manifest_file(root)] == ["manifest.ambiguous"]


def test_manifest_file_with_other_extension(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.yaml": "id: p\n"})
    assert [p.code for p in validate_manifest_file(root / "plugin.yaml")] == ["manifest.format"]


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_unreadable_manifest(tmp_path: Path) -> None:
    # /proc/self/mem is a regular file whose read at offset 0 fails with EIO, even as root.
    (tmp_path / "plugin.toml").symlink_to("/proc/self/mem")
    (problem,) = validate_manifest_file(tmp_path)
    assert problem.code == "manifest.unreadable"


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_bytes(b"#" * (10 * MAX_MANIFEST_BYTES))
    assert [p.code for p in validate_manifest_file(tmp_path)] == ["manifest.too_large"]


def test_file_problems_carry_the_source(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": 'id = "p"\n'})
    with pytest.raises(ManifestError) as info:
        load_manifest(root)
    assert info.value.source == str(root / "plugin.toml")
    assert {p.code for p in info.value.problems} == {"manifest.required"}


def test_read_manifest_data_checks_the_file_but_not_the_fields(tmp_path: Path) -> None:
    root = make_plugin(tmp_path, {"plugin.toml": 'id = "p"\nversion = "1.0.0"\n'})
    data = read_manifest_data(root)
    assert data == {"id": "p", "version": "1.0.0"}  # no entry yet: not validated
    assert manifest_from_dict({**data, "entry": "p:Plugin"}).id == "p"


@pytest.mark.parametrize(("content", "code"), [
    ('{"id": "a", "id": "b"}', "manifest.duplicate_key"),
    ("[1, 2]", "manifest.type"),
    (b'{"id": "caf\xe9"}', "manifest.encoding"),
    ("{" * (MAX_MANIFEST_BYTES + 1), "manifest.too_large"),
])
def test_read_manifest_data_refuses_bad_files(tmp_path: Path, content: str | bytes,
                                              code: str) -> None:
    root = make_plugin(tmp_path, {"manifest.json": content})
    with pytest.raises(ManifestError) as info:
        read_manifest_data(root / "manifest.json")
    assert [p.code for p in info.value.problems] == [code]


# ------------------------------------------------------------------------------------------
# The JSON Schema
# ------------------------------------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    committed = (REPO / "docs" / "manifest.schema.json").read_text(encoding="utf-8")
    generated = json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"
    assert committed == generated, "regenerate with: python docs/gen_manifest_reference.py"


def test_schema_is_valid_draft_2020_12_and_accepts_the_examples() -> None:
    import jsonschema

    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    parsed_full = json.loads(json.dumps(parse_manifest(FULL_TOML, format="toml").to_dict()))
    for instance in (ARCADE_SEED, MINIMAL, parsed_full,
                     {**ARCADE_SEED, "dependencies": ["a", "b@^1", {"id": "c", "version": "1"}]}):
        assert list(validator.iter_errors(instance)) == []


def test_schema_refuses_what_the_validator_refuses() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    for bad in (with_(descripton="x"), with_(id="Bad Id"), with_(version="1.0"),
                with_(runtime="Python 3"), with_(limits={"fuel": 0}), with_(entry=None),
                with_(permissions=["disk:x"]), with_(activation=["lazy"]),
                with_(limits={"memory": "5 parsecs"}), with_(limits={"timeout": "2 days"})):
        assert list(validator.iter_errors(bad)), bad


def test_config_schema_may_refer_to_itself() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/hello-config",
        "properties": {
            "a": {"$ref": "#/$defs/port"},
            "b": {"$ref": "limits#/properties/max"},
            "c": {"$ref": "#port", "default": {"$ref": "http://data.not/a-reference"}},
            "d": {"const": {"$ref": "file:///also/just/data"}},
        },
        "$defs": {
            "port": {"$anchor": "port", "type": "integer"},
            "limits": {"$id": "limits", "properties": {"max": {"type": "integer"}}},
        },
    }
    manifest = manifest_from_dict(with_(config={"schema": schema}))
    assert manifest.config_schema == schema


@pytest.mark.parametrize("fmt,text", [("json", "[" * 30_000), ("toml", "a = " + "[" * 30_000)])
def test_a_manifest_nested_too_deeply_is_a_problem_not_a_crash(fmt: str, text: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, format=fmt)  # type: ignore[arg-type]
    assert [p.code for p in info.value.problems] == ["manifest.too_deep"]


def test_manifest_from_plain_builds_what_manifest_from_dict_builds_and_refuses_alike() -> None:
    data = {"id": "plain", "version": "1.2.0", "entry": "m:P", "dependencies": {"b": "^1"},
            "limits": {"memory": "64Mi"}, "configSchema": {"type": "object"}, "x-team": "a"}
    assert manifest_from_plain(data) == manifest_from_dict(data)
    again = manifest_from_dict(data)
    assert manifest_from_plain(again.to_dict()) == again
    with pytest.raises(ManifestError) as info:
        manifest_from_plain({"id": "plain", "version": "one", "entry": "m:P"}, source="cache")
    assert info.value.problems[0].path == "version"


@pytest.mark.parametrize("source", ["full", "arcade", "minimal"])
def test_manifest_from_own_dict_rebuilds_what_to_dict_wrote(source: str) -> None:
    m = {"full": lambda: parse_manifest(FULL_TOML, format="toml"),
         "arcade": lambda: manifest_from_dict(ARCADE_SEED),
         "minimal": lambda: manifest_from_dict(MINIMAL)}[source]()
    back = manifest_from_own_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert back.to_dict() == m.to_dict()


def test_manifest_from_own_dict_refuses_what_to_dict_never_writes() -> None:
    # It does not validate; it only refuses shapes that are not a manifest's own dict, and
    # the caller (the discovery cache) then parses the file again.
    with pytest.raises(KeyError):
        manifest_from_own_dict({**MINIMAL, "pluginType": "notify"})
    with pytest.raises(AttributeError):
        manifest_from_own_dict({**MINIMAL, "provides": ["not", "a", "table"]})


# TOML documents both parsers must read alike: valid ones, and each kind of refusal.
_TOML_PARITY = [
    'id = "a"\nversion = "1.0.0"\nentry = "a:b"\n',
    'a.b.c = 1\n[t]\nx = [1, 2.5, "s", true, 1979-05-27T07:32:00Z, {k = "v"}]\n',
    's = """\nmulti\\tline"""\nl = \'\'\'raw\\n\'\'\'\nh = 0xff\no = 0o7\nb = 0b1\nf = -inf\n',
    '[[a]]\nx = 1\n[[a]]\nx = 2\n[a.b]\ny = 3\n',
    'id = "a"\nid = "b"\n',  # duplicate key
    "[t]\nx = 1\n[t]\ny = 2\n",  # duplicate table
    'x = ',  # syntax
    't = {a = 1,\n b = 2}\n',  # newline in an inline table: TOML 1.1, refused by 1.0
    't = {a = 1, }\n',  # trailing comma in an inline table: TOML 1.1
    's = "\\e"\n',  # \e escape: TOML 1.1
    'd = 1979-05-27T07:32Z\n',  # a time without seconds: TOML 1.1
    'k = "\\ud800"\n',  # not a Unicode scalar value
    "a = 1\r",  # a lone carriage return
    'x = ' + "[" * 2000 + "]" * 2000,  # deep: RecursionError in both
]


@pytest.mark.parametrize("text", _TOML_PARITY)
def test_the_toml_parser_in_use_reads_what_tomllib_reads(text: str) -> None:
    """Manifests mean the same whichever parser ``_toml_parser`` chose (tomli compiled, with
    the ``fast`` extra, or the standard library's): the same data, or a refusal by both."""
    import tomllib

    from plughost.core import manifest

    def outcome(loads: Any, error: type[Exception]) -> Any:
        try:
            return ("ok", loads(text))
        except error:
            return ("refused",)
        except RecursionError:
            return ("too deep",)

    assert outcome(*manifest.toml_parser()) == outcome(tomllib.loads, tomllib.TOMLDecodeError)


def test_tomli_is_used_only_compiled_and_reading_this_pythons_toml_version(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib
    import types

    from plughost.core import manifest

    def choice(version: str, parser_file: str, python: tuple[int, int]) -> str:
        module = types.ModuleType("tomli")
        module.__version__ = version  # type: ignore[attr-defined]
        module.loads = lambda text: {}  # type: ignore[attr-defined]
        module.TOMLDecodeError = type("TOMLDecodeError", (ValueError,), {})  # type: ignore
        parser = types.ModuleType("tomli._parser")
        parser.__file__ = parser_file
        module._parser = parser  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "tomli", module)
        monkeypatch.setitem(sys.modules, "tomli._parser", parser)
        monkeypatch.setattr(manifest.sys, "version_info", (*python, 0))
        loads, _ = manifest._toml_parser()
        return "stdlib" if loads is tomllib.loads else "tomli"

    compiled = "/x/tomli/_parser.cpython-311-x86_64-linux-gnu.so"
    assert choice("2.3.2", compiled, (3, 11)) == "tomli"
    assert choice("2.2.1", compiled, (3, 14)) == "tomli"
    assert choice("2.3.2", "/x/tomli/_parser.py", (3, 11)) == "stdlib"  # not compiled
    assert choice("2.5.0", compiled, (3, 11)) == "stdlib"  # TOML 1.1 beside a 1.0 tomllib
    assert choice("2.1.0", compiled, (3, 11)) == "stdlib"
    assert choice("2.3.2", compiled, (3, 15)) == "stdlib"  # TOML 1.0 beside a 1.1 tomllib
    assert choice("2.4.0", compiled, (3, 15)) == "tomli"
    monkeypatch.setitem(sys.modules, "tomli", None)  # not installed
    assert manifest._toml_parser()[0] is tomllib.loads


def test_the_fast_extra_parses_manifests_with_compiled_tomli() -> None:
    # CI installs the test extra, which includes `fast`: the faster parser is the one in use.
    from plughost.core import manifest

    assert manifest.toml_parser()[0].__module__.startswith("tomli")
    assert manifest.toml_parser() is manifest.toml_parser()  # chosen once


def test_built_manifests_equal_the_constructors_and_stay_frozen() -> None:
    """The builders make a manifest from the fields given (the others read the class's
    defaults): it is equal to, hashes and dumps like, the one the constructor makes with
    every field, and it is as immutable."""
    import dataclasses

    from plughost.core.manifest import manifest_from_own_dict

    full = {"id": "a", "version": "1.0.0", "entry": "m:P", "tags": ["x"],
            "dependencies": {"b": "^1"}, "limits": {"timeout": 3},
            "config": {"schema": {"type": "object"}, "defaults": {"n": 1}}, "x-team": "t"}
    for data in ({"id": "a", "version": "1.0.0", "entry": "m:P"}, full):
        built = manifest_from_dict(data)
        every = Manifest(**{f.name: getattr(built, f.name)
                            for f in dataclasses.fields(Manifest)})
        rebuilt = manifest_from_own_dict(built.to_dict())
        for m in (built, rebuilt):
            assert m == every and hash(m) == hash(every) and m.to_dict() == every.to_dict()
            assert dataclasses.replace(m, description="d").description == "d"
            with pytest.raises(dataclasses.FrozenInstanceError):
                m.id = "b"  # type: ignore[misc]
    bare = manifest_from_dict({"id": "a", "version": "1.0.0", "entry": "m:P"})
    assert (bare.dependencies, bare.extras, bare.config_defaults) == ({}, {}, {})
    with pytest.raises(TypeError):  # a required field missing: refused, not half-built
        manifest_from_own_dict({"id": "a", "entry": "m:P"})
