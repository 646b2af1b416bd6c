"""JSON Schema and Markdown reference generated from the manifest field table.

Private to :mod:`plughost.core.manifest`, which exposes :func:`manifest_json_schema` and
:func:`reference_markdown`. Everything here is derived from ``FIELDS``; nothing is written twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from plughost.core._manifest_checks import (
    _DURATION_RE,
    _SIZE_RE,
    ID_PATTERN,
    PERMISSION_KINDS,
    RUNTIME_NAME_RE,
    RUNTIMES,
)
from plughost.core.manifest import _LIFTED, FIELDS, PROBLEM_CODES, _Field
from plughost.core.platforms import PLATFORM_RE

SEMVER_PATTERN: Final = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_ACTIVATION_PATTERN: Final = r"^(startup|manual|(command|event|extension):[^\s]+)$"
_PERMISSION_PATTERN: Final = (
    "^(" + "|".join(re.escape(k) for k in sorted(PERMISSION_KINDS, key=len, reverse=True))
    + r")(:\S+)?$"
)


def _schema_for(spec: _Field) -> dict[str, Any]:
    string_list = {"type": "array", "items": {"type": "string", "minLength": 1}}
    dep_object = {
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": ID_PATTERN},
                       "name": {"type": "string", "pattern": ID_PATTERN},
                       "version": {"type": "string", "minLength": 1}},
        "additionalProperties": False,
    }
    schemas: dict[str, dict[str, Any]] = {
        "id": {"type": "string", "pattern": ID_PATTERN},
        "string": {"type": "string"},
        "version": {"type": "string", "pattern": SEMVER_PATTERN},
        "range": {"type": "string", "minLength": 1},
        "strings": string_list,
        "runtime": {"anyOf": [{"enum": list(RUNTIMES)},
                              {"type": "string", "pattern": RUNTIME_NAME_RE.pattern}]},
        "entry": {"type": "string", "minLength": 1},
        "deps": {"anyOf": [
            {"type": "object", "propertyNames": {"pattern": ID_PATTERN},
             "additionalProperties": {"anyOf": [{"type": "string", "minLength": 1},
                                                dep_object]}},
            {"type": "array", "items": {"anyOf": [
                {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{0,63}(@.+)?$"},
                dep_object]}},
        ]},
        "platforms": {"type": "array",
                      "items": {"type": "string", "pattern": PLATFORM_RE.pattern}},
        "alternatives": {"type": "array", "items": {
            "type": "object", "required": ["runtime", "entry"], "additionalProperties": False,
            "properties": {
                "runtime": {"anyOf": [{"enum": list(RUNTIMES)},
                                      {"type": "string", "pattern": RUNTIME_NAME_RE.pattern}]},
                "entry": {"type": "string", "minLength": 1},
                "platforms": {"type": "array",
                              "items": {"type": "string", "pattern": PLATFORM_RE.pattern}},
            }}},
        "activation": {"anyOf": [
            {"type": "string", "pattern": _ACTIVATION_PATTERN},
            {"type": "array", "minItems": 1,
             "items": {"type": "string", "pattern": _ACTIVATION_PATTERN}},
        ]},
        "permissions": {"type": "array",
                        "items": {"type": "string", "pattern": _PERMISSION_PATTERN}},
        "object": {"type": "object"},
        "schema": {"type": "object"},
        "bytes": {"anyOf": [{"type": "integer", "minimum": 1},
                            {"type": "string", "pattern": _SIZE_RE.pattern}]},
        "seconds": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "string", "pattern": _DURATION_RE.pattern}]},
        "count": {"type": "integer", "minimum": 1},
        "hint": {"type": ["string", "number"]},
    }
    if spec.kind == "table":
        props: dict[str, Any] = {}
        for child in spec.children:
            _add_property(props, child)
        out: dict[str, Any] = {"type": "object", "properties": props,
                               "patternProperties": {"^x-": {}},
                               "additionalProperties": False}
    else:
        out = dict(schemas[spec.kind])
    return {"description": _plain(spec.doc), **out}


def _plain(doc: str) -> str:
    return doc.replace("`", "")


def _add_property(props: dict[str, Any], spec: _Field) -> None:
    props[spec.key] = _schema_for(spec)
    for alias in spec.aliases:
        props[alias] = {**_schema_for(spec),
                        "description": f"Alternative spelling of '{spec.key}'."}


def build_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the manifest, generated from :data:`FIELDS`.

    It accepts the native keys, their camelCase spellings and the Arcade keys, so editors can
    check both ``plugin.toml`` (via a TOML language server) and ``manifest.json``. Checks that
    need the plugin folder or cross-field logic (entry per runtime, self-dependency) are only
    done by :func:`load_manifest`.
    """
    props: dict[str, Any] = {}
    for spec in FIELDS:
        _add_property(props, spec)
    for key, (target, kind) in _LIFTED.items():
        base = _schema_for(_Field(key, kind, ""))
        base["description"] = (f"Arcade spelling of '{target}'"
                               + (" (host range '>=' this version)." if key == "minVersion"
                                  else "."))
        props[key] = base
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "plughost plugin manifest",
        "description": "plugin.toml (native, kebab-case keys) or manifest.json (Arcade, "
                       "camelCase keys). Generated from plughost.core.manifest.FIELDS; do not "
                       "edit by hand.",
        "type": "object",
        "properties": props,
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
        "allOf": [
            {"anyOf": [{"required": ["id"]}, {"required": ["name"]}]},
            {"required": ["version"]},
            {"anyOf": [{"required": ["entry"]}, {"required": ["entryPoint"]}]},
        ],
    }


def build_reference_markdown() -> str:
    """The field, Arcade-mapping and problem-code tables of ``docs/manifest.md`` (Markdown)."""
    lines = ["### Fields", "", "| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    type_names = {
        "id": "string (id)", "string": "string", "version": "string (SemVer)",
        "range": "string (range)", "strings": "list of strings", "runtime": "string (enum)",
        "entry": "string", "deps": "table id → range", "platforms": "list of platforms",
        "alternatives": "list of tables", "activation": "string or list",
        "permissions": "list of scopes", "object": "table", "schema": "table (JSON Schema)",
        "bytes": "integer or size string", "seconds": "number or duration string",
        "count": "positive integer", "hint": "string", "table": "table",
    }
    for path, spec in _doc_rows(FIELDS):
        req = " **(required)**" if spec.required else ""
        lines.append(f"| `{path}`{req} | {type_names[spec.kind]} | {spec.default} | "
                     f"{spec.doc} |")
    lines += ["", "### Arcade `manifest.json` mapping", "",
              "| Arcade key | Native field | Notes |", "|---|---|---|"]
    arcade_notes = {
        "name": ("`name`, and `id` when no `id` is given", "Must then be a valid id."),
        "pluginType": ("`type`", ""),
        "entryPoint": ("`entry`", "Without `runtime`, an `entryPoint` that is not "
                       "`module:attribute` (e.g. `slack.so`) means `runtime = \"process\"`."),
        "configSchema": ("`config.schema`", ""),
        "defaultConfig": ("`config.defaults`", ""),
        "minVersion": ("`host`", "`\"minVersion\": \"1.0.0\"` becomes `host = \">=1.0.0\"`."),
        "dependencies": ("`dependencies`", 'A list of `"id"`, `"id@range"` or '
                         '`{"id" or "name", "version"}`, or a map id → range.'),
        "resources": ("`resources`", "`cpu`, `memory`, `disk` hints kept as given."),
        "tags, icon, homepage, repository, description, author, version": (
            "same names", ""),
    }
    for key, (native, note) in arcade_notes.items():
        keys = ", ".join(f"`{k}`" for k in key.split(", "))
        lines.append(f"| {keys} | {native} | {note} |")
    camel = sorted({(a, p) for p, s in _doc_rows(FIELDS) for a in s.aliases
                    if a not in ("pluginType", "entryPoint")})
    lines.append("| " + ", ".join(f"`{a}`" for a, _ in camel)
                 + " | " + ", ".join(f"`{p}`" for _, p in camel)
                 + " | camelCase spellings of multi-word keys, accepted in any manifest. |")
    lines += ["", "### Problem codes", "", "| Code | Meaning |", "|---|---|"]
    lines += [f"| `{code}` | {meaning} |" for code, meaning in PROBLEM_CODES.items()]
    return "\n".join(lines) + "\n"


def _doc_rows(fields: tuple[_Field, ...], prefix: str = "") -> Iterator[tuple[str, _Field]]:
    for f in fields:
        yield prefix + f.key, f
        if f.kind == "table":
            yield from _doc_rows(f.children, f"{prefix}{f.key}.")
