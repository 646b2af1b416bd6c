"""Which references a plugin's JSON Schema may use: only ones that point inside the schema.

A JSON Schema can name other documents (``"$ref": "file:///etc/x.json"``, ``"$ref":
"http://10.0.0.1/s.json"``, a relative ``$ref`` against a remote ``$id``). A validator that
follows them reads local files and makes network requests on behalf of whoever wrote the schema
— for a config schema, the plugin's publisher, with none of the plugin's permissions checked. So
a schema supplied by a plugin (or a user) may only refer to itself: ``#``, ``#/$defs/x``, an
``$anchor``, or the ``$id`` of a sub-schema embedded in the same document. Everything else is
refused *before* the schema is used, with the JSON path of the offending keyword.

This module is the rule (stdlib only, so the manifest check in ``core`` applies it when a
package is checked or installed); :mod:`plughost.services.config` applies it again when a
schema is registered and validates with a reference registry that retrieves nothing, so a
schema stored before this rule existed cannot fetch anything either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urldefrag, urljoin

__all__ = ["DIALECT", "MAX_SCHEMA_DEPTH", "schema_reference_problems"]

#: The one dialect plughost validates with; ``$schema`` may name it (or be left out).
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

#: Nesting deeper than this is refused: no real config schema needs it, and validators recurse.
MAX_SCHEMA_DEPTH: Final = 64

# Keywords whose value is data, not a schema: a "$ref" inside them is not a reference.
_DATA_KEYWORDS: Final = frozenset({"const", "enum", "default", "examples"})
# Keywords whose value maps names to schemas (the names are not keywords).
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
_REFERENCES: Final = ("$ref", "$dynamicRef", "$recursiveRef")

Path = tuple[str | int, ...]


def schema_reference_problems(schema: Any) -> list[tuple[Path, str]]:
    """``(json path, message)`` for every reference, ``$schema`` or nesting the rule refuses.

    Empty when ``schema`` refers only to itself. Never raises for any JSON value (an iterative
    walk: a hostile nesting depth cannot exhaust the stack).
    """
    if not isinstance(schema, Mapping):
        return []
    embedded: set[str] = set()
    references: list[tuple[Path, str, str, str]] = []  # path, keyword, value, resolved target
    problems: list[tuple[Path, str]] = []
    stack: list[tuple[Any, Path, str, int]] = [(schema, (), "", 0)]
    while stack:
        node, path, base, depth = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                stack.append((item, (*path, i), base, depth + 1))
            continue
        if not isinstance(node, Mapping):
            continue
        if depth > MAX_SCHEMA_DEPTH:
            problems.append((path, f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels; "
                                   "flatten it (move shared parts to $defs)"))
            continue
        sid = node.get("$id")
        if isinstance(sid, str) and sid:
            base = urldefrag(urljoin(base, sid))[0]
            embedded.add(base)
        dialect = node.get("$schema")
        if dialect is not None and (
            not isinstance(dialect, str) or dialect.rstrip("#") != DIALECT
        ):
            problems.append(((*path, "$schema"),
                             f"{_show(dialect)} is not supported; plughost validates with JSON "
                             f"Schema draft 2020-12: remove $schema or set it to {DIALECT}"))
        for keyword in _REFERENCES:
            if keyword not in node:
                continue
            value = node[keyword]
            if not isinstance(value, str):
                problems.append(((*path, keyword), "must be a string"))
                continue
            references.append(((*path, keyword), keyword, value, urljoin(base, value)))
        for key, value in node.items():
            if key in _DATA_KEYWORDS or key in _REFERENCES or not isinstance(value, dict | list):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, Mapping):
                for name, sub in value.items():
                    stack.append((sub, (*path, key, name), base, depth + 1))
            else:
                stack.append((value, (*path, key), base, depth + 1))
    for path, keyword, value, target in references:
        document = urldefrag(target)[0]
        if document == "" or document in embedded:
            continue
        problems.append((path, f"{keyword} {_show(value)} points outside the schema; only "
                               "references inside it are allowed (#/$defs/NAME, #anchor, or the "
                               "$id of an embedded sub-schema): copy the referenced schema into "
                               "$defs"))
    problems.sort(key=lambda p: [str(part) for part in p[0]])
    return problems


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
