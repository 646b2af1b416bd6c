"""The plugin manifest: one model, two file shapes, every problem reported at once.

A plugin describes itself in ``plugin.toml`` (the native shape, kebab-case keys) or in
``manifest.json`` (the Arcade shape from the original design: camelCase ``pluginType``,
``entryPoint``, ``configSchema``, ``defaultConfig``, ``minVersion``; JSON may also use the native
keys). Both are normalised into the same frozen :class:`Manifest`.

The fields are declared **once**, in :data:`FIELDS`. That table drives

* validation (:func:`manifest_from_dict` walks it),
* serialisation (:meth:`Manifest.to_dict`),
* the JSON Schema (:func:`manifest_json_schema`, committed as ``docs/manifest.schema.json``), and
* the reference tables in ``docs/manifest.md`` (:func:`reference_markdown`),

so the four cannot drift apart (tests compare the committed files with the generated ones).

Validation never stops at the first problem: every problem found is collected as a
:class:`~plughost.errors.Problem` with the path of the field *as written* (``limits.memory``,
``dependencies.http-client``, ``configSchema``) and a stable code from :data:`PROBLEM_CODES`, and
raised together as one :class:`~plughost.errors.ManifestError`. Only the standard library is
needed; a small manifest parses and validates in a few tens of microseconds. Where the ``fast``
extra installed it, TOML is read by tomli compiled (:func:`_toml_parser`): the parser the
standard library's ``tomllib`` is made from, reading the same TOML version, three times faster.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from plughost.core._manifest_checks import (
    _BAD,
    _CHECKERS,
    _ID_RE,
    ID_PATTERN,
    PERMISSION_KINDS,
    RUNTIMES,
    Problems,
    _check_entry_for_runtime,
    _check_version,
    _did_you_mean,
    _id_message,
    _infer_runtime,
    _json_copy,
    _range,
    _version,
    _wrong,
)
from plughost.core.platforms import Alternative
from plughost.core.version import ANY, Version, VersionRange
from plughost.errors import ManifestError, Problem

__all__ = [
    "FIELDS",
    "ID_PATTERN",
    "MANIFEST_FILES",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "PERMISSION_KINDS",
    "PROBLEM_CODES",
    "RUNTIMES",
    "Limits",
    "Manifest",
    "Provides",
    "Resources",
    "load_manifest",
    "manifest_from_dict",
    "manifest_from_own_dict",
    "manifest_from_plain",
    "manifest_json_schema",
    "parse_manifest",
    "read_manifest_data",
    "reference_markdown",
    "validate_manifest_file",
]

MANIFEST_FILES: Final = ("plugin.toml", "manifest.json")
"""File names looked for in a plugin folder (exactly one of them must be present)."""

MAX_MANIFEST_BYTES: Final = 64 * 1024
"""Manifests larger than this are refused before any parsing (``manifest.too_large``)."""

MAX_MANIFEST_DEPTH: Final = 64
"""Deepest nesting of tables/arrays accepted (``manifest.too_deep``): far more than any real
manifest needs, and far from Python's recursion limit for every walk over the data."""


PROBLEM_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "manifest.missing": "No manifest: the path does not exist, or a folder holds neither "
        "`plugin.toml` nor `manifest.json`.",
        "manifest.ambiguous": "A folder holds both `plugin.toml` and `manifest.json`; keep one.",
        "manifest.format": "The file is neither `.toml` nor `.json`.",
        "manifest.unreadable": "The file exists but could not be read (permissions, I/O error).",
        "manifest.too_large": f"The manifest is larger than {MAX_MANIFEST_BYTES // 1024} KiB; "
        "refused before parsing.",
        "manifest.too_deep": f"Tables and arrays nest more than {MAX_MANIFEST_DEPTH} levels "
        "deep.",
        "manifest.encoding": "The file is not valid UTF-8.",
        "manifest.syntax": "The file is not valid TOML / JSON (the message gives line and column).",
        "manifest.duplicate_key": "A key appears twice in the same table/object, or a dependency "
        "is listed twice.",
        "manifest.unknown_key": "A key the manifest does not define (prefix it with `x-` to keep "
        "private data); the message suggests the closest known key.",
        "manifest.conflict": "The same field is given twice under two spellings (e.g. `entry` and "
        "`entryPoint`, or `host` and `minVersion`).",
        "manifest.required": "A required field is missing or empty.",
        "manifest.type": "A value has the wrong type (e.g. a number where a string is expected), "
        "or is not representable in JSON (TOML dates, NaN).",
        "manifest.id": "A plugin id (the manifest's or a dependency's) does not match "
        f"`{ID_PATTERN}`.",
        "manifest.version": "A version (`version`, `minVersion`) is not SemVer 2.0 `X.Y.Z`.",
        "manifest.range": "A version range (`host`, a dependency) does not parse.",
        "manifest.runtime": f"`runtime` looks like a misspelling of one of {', '.join(RUNTIMES)}, "
        "or is not a runtime name (lowercase letters, digits, `-`, `_`).",
        "manifest.platform": "A `platforms` entry is not `<os>` or `<os>-<arch>` (`linux`, "
        "`linux-x86_64`, `darwin-arm64`, `win32`).",
        "manifest.entry": "`entry` does not fit the runtime: python needs `module:attribute` "
        "with the module present in the plugin folder; process a command line; wasm an existing "
        "`.wasm`/`.wat` file inside the folder; grpc `host:port`.",
        "manifest.dependency": "A plugin depends on itself, or lists an id both as required and "
        "as optional dependency.",
        "manifest.activation": "An `activation` entry is not `startup`, `manual`, "
        "`command:<id>`, `event:<topic>` or `extension:<name>`.",
        "manifest.permission": "A permission scope is not `kind[:target]` with a known kind.",
        "manifest.limit": "A limit is not a positive size / duration / count.",
        "manifest.config": "`config.schema` is not a usable JSON Schema object (bad `type`, "
        "`properties`, `required`; a `$ref` that points outside the schema; a `$schema` other "
        "than draft 2020-12; nesting deeper than 64 levels), or `config.defaults` is not an "
        "object.",
    }
)
"""Every code a manifest :class:`~plughost.errors.Problem` can carry, with its meaning."""


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True)
class Limits:
    """Resource limits a plugin asks to run under; ``None`` means "not set".

    A runtime enforces those it can and reports the others at load time.
    """

    timeout: float | None = None
    """Seconds a single call may take."""
    memory: int | None = None
    """Bytes of memory (the manifest accepts ``"128Mi"``, ``"64MB"``, ``"1G"`` or an int)."""
    cpu: float | None = None
    """CPU seconds."""
    fuel: int | None = None
    """WebAssembly fuel units per call."""
    open_files: int | None = None
    """Open file descriptors."""
    output: int | None = None
    """Bytes per second of stderr/log output before it is throttled."""
    processes: int | None = None
    """Processes and threads at once, the plugin's own included."""

    def declared(self) -> frozenset[str]:
        """Names (as in :data:`plughost.runtimes.base.LIMIT_NAMES`) of the limits that are set."""
        return frozenset(
            name for name in _LIMIT_ATTRS if getattr(self, name) is not None
        )


_LIMIT_ATTRS: Final = (
    "timeout", "memory", "cpu", "fuel", "open_files", "output", "processes"
)


@dataclass(frozen=True)
class Provides:
    """What a plugin offers to the host and to other plugins."""

    extension_points: tuple[str, ...] = ()
    """Extension points (hook specs) it implements."""
    commands: tuple[str, ...] = ()
    """Command ids it registers."""
    events: tuple[str, ...] = ()
    """Event topics it emits."""
    channels: tuple[str, ...] = ()
    """Channel names it serves."""


@dataclass(frozen=True)
class Resources:
    """Arcade's resource hints (Kubernetes-style quantities), kept exactly as given."""

    cpu: str | None = None
    memory: str | None = None
    disk: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated plugin manifest. Build one with :func:`load_manifest` / :func:`parse_manifest`
    / :func:`manifest_from_dict`; the constructor itself trusts its arguments.

    Not slotted: the builders here make one with the fields they have (:func:`_manifest`), and
    the others read their defaults from the class."""

    id: str
    """Unique plugin id, matching ``^[a-z0-9][a-z0-9._-]{0,63}$``."""
    name: str
    """Human-readable name (defaults to the id)."""
    version: Version
    """The plugin's own SemVer version."""
    description: str = ""
    author: str = ""
    license: str = ""
    homepage: str = ""
    repository: str = ""
    documentation: str = ""
    icon: str = ""
    tags: tuple[str, ...] = ()
    type: str = ""
    """Free-text category, e.g. ``notify``, ``music-source``."""
    runtime: str = "python"
    """One of :data:`RUNTIMES`."""
    entry: str = ""
    """python: ``module:attribute``; process: a command line; wasm: a ``.wasm``/``.wat`` file;
    grpc: ``host:port``."""
    host: VersionRange = ANY
    """plughost versions the plugin supports."""
    platforms: tuple[str, ...] = ()
    """Where ``runtime``/``entry`` runs: ``<os>`` or ``<os>-<arch>`` (empty: everywhere)."""
    alternatives: tuple[Alternative, ...] = ()
    """Other ``{runtime, entry, platforms}`` tried in order when the main one does not fit."""
    dependencies: Mapping[str, VersionRange] = field(default_factory=lambda: _EMPTY)
    optional_dependencies: Mapping[str, VersionRange] = field(default_factory=lambda: _EMPTY)
    provides: Provides = Provides()
    activation: tuple[str, ...] = ("startup",)
    """When to activate: ``startup``, ``manual``, ``command:x``, ``event:y``, ``extension:z``."""
    permissions: tuple[str, ...] = ()
    """Permission scopes requested, e.g. ``fs:read:/data``, ``net:*.example.com``."""
    config_schema: Mapping[str, Any] | None = None
    """JSON Schema of the plugin's configuration."""
    config_defaults: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    params_schema: Mapping[str, Any] | None = None
    """JSON Schema of the parameters the plugin's calls take (Arcade's ``paramsSchema``)."""
    limits: Limits = Limits()
    resources: Resources = Resources()
    extras: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """The ``x-*`` keys, by dotted path (``x-team``, ``limits.x-gpu``)."""

    def __hash__(self) -> int:
        # The mapping fields are not hashable; id + version identify a manifest well enough
        # and equal manifests always share both.
        return hash((self.id, self.version))

    @property
    def is_lazy(self) -> bool:
        """True when the plugin is not activated at startup but on a trigger or on request."""
        return "startup" not in self.activation

    def to_dict(self) -> dict[str, Any]:
        """The native (``plugin.toml``-shaped) form as a JSON-serialisable dict.

        Fields at their default are left out; ``manifest_from_dict(m.to_dict()) == m``.
        """
        out: dict[str, Any] = {}
        for path, spec in _LEAVES:
            value = _get_attr(self, path)
            if value is None or (spec.required is False and path not in _NONE_DEFAULT
                                 and _is_default(spec, value)):
                continue
            _put(out, path, _DUMP.get(spec.kind, _identity)(value))
        for key, value in self.extras.items():
            _put(out, key, _thaw(value))
        return out


_REQUIRED: Final = frozenset(f.name for f in fields(Manifest)
                             if f.default is MISSING and f.default_factory is MISSING)


def _defaults_on_the_class() -> None:
    """A field with a default factory has no default on the class (the dataclass's
    ``__init__`` calls the factory): put the value it makes there, shared and read-only, for
    :func:`_manifest`."""
    for spec in fields(Manifest):
        if spec.default_factory is not MISSING:
            setattr(Manifest, spec.name, spec.default_factory())


_defaults_on_the_class()
_new_object = object.__new__
_set_attribute = object.__setattr__


def _manifest(values: dict[str, Any]) -> Manifest:
    """``Manifest(**values)`` at a third of the cost on a small manifest: ``values`` (by
    field name, the required ones included; a fresh dict, which the manifest keeps as its
    attributes) are the fields given, and a field left out reads its default from the class,
    where the frozen dataclass's ``__init__`` sets each of the 28 fields in turn. For this
    module's builders, which pass field names only.

    :raises TypeError: a required field is missing, as the constructor would.
    """
    if not values.keys() >= _REQUIRED:
        raise TypeError(f"Manifest needs {', '.join(sorted(_REQUIRED - values.keys()))}")
    manifest = _new_object(Manifest)
    _set_attribute(manifest, "__dict__", values)
    return manifest


def _part(group: str, values: dict[str, Any]) -> Any:
    """``_PARTS[group](**values)`` as :func:`_manifest` makes a manifest (every field of a part
    has a default): at two fifths of the cost, which is why the parts are not slotted."""
    part = _new_object(_PARTS[group])
    _set_attribute(part, "__dict__", values)
    return part


def _get_attr(m: Manifest, path: str) -> Any:
    group, attr = _MODEL_ATTR[path]
    return getattr(getattr(m, group) if group else m, attr)


def _put(out: dict[str, Any], path: str, value: Any) -> None:
    table, _, leaf = path.rpartition(".")
    if table:
        out = out.setdefault(table, {})
    out[leaf] = value


def _is_default(spec: _Field, value: Any) -> bool:
    if spec.kind == "range":
        return str(value) == "*"
    if spec.kind == "activation":
        return tuple(value) == ("startup",)
    if spec.kind == "runtime":
        return bool(value == "python")
    return not value


def _identity(value: Any) -> Any:
    return value


def _thaw(value: Any) -> Any:
    """Plain, JSON-serialisable copy of a (possibly read-only) nested value."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


_DUMP: Final[dict[str, Callable[[Any], Any]]] = {
    "version": str,
    "range": str,
    "deps": lambda d: {k: str(v) for k, v in d.items()},
    "platforms": list,
    "alternatives": lambda alts: [a.to_dict() for a in alts],
    "strings": list,
    "activation": list,
    "permissions": list,
    "object": _thaw,
    "schema": _thaw,
}


# --------------------------------------------------------------------------------------------
# The field table: the single source of truth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One manifest key: how to check it, document it and describe it in the JSON Schema."""

    key: str
    """Native key, kebab-case."""
    kind: str
    """Value kind; selects the checker in ``_CHECKERS`` and the schema in ``_SCHEMAS``."""
    doc: str
    default: str = "—"
    """The default as shown in the docs."""
    required: bool = False
    aliases: tuple[str, ...] = ()
    """Other accepted spellings at the same level (Arcade names, camelCase)."""
    children: tuple[_Field, ...] = ()


def _f(key: str, kind: str, doc: str, default: str = "—", *, required: bool = False,
       aliases: tuple[str, ...] = (), children: tuple[_Field, ...] = ()) -> _Field:
    if "-" in key:
        # JSON-minded authors write camelCase; accept it for every multi-word key.
        head, *rest = key.split("-")
        aliases += (head + "".join(part.title() for part in rest),)
    return _Field(key, kind, doc, default, required, aliases, children)


FIELDS: Final[tuple[_Field, ...]] = (
    _f("id", "id", "Unique plugin id: lowercase letters, digits, `.`, `_`, `-`; at most 64 "
       "characters; starts with a letter or digit.", "the `name` (Arcade style)", required=True),
    _f("name", "string", "Human-readable name. In an Arcade manifest without `id`, `name` is "
       "the id.", "the `id`"),
    _f("version", "version", "The plugin's version, SemVer 2.0 (`1.2.3`, `2.0.0-rc.1`).",
       required=True),
    _f("description", "string", "One-line description.", '""'),
    _f("author", "string", "Author or maintainer.", '""'),
    _f("license", "string", "License, preferably an SPDX expression (`Apache-2.0`).", '""'),
    _f("homepage", "string", "Project home page URL.", '""'),
    _f("repository", "string", "Source repository URL.", '""'),
    _f("documentation", "string", "Documentation URL.", '""'),
    _f("icon", "string", "Icon URL or a path inside the plugin folder.", '""'),
    _f("tags", "strings", "Free-form keywords for search.", "[]"),
    _f("type", "string", "Free-text category used to group and filter plugins (`notify`, "
       "`music-source`).", '""', aliases=("pluginType",)),
    _f("runtime", "runtime", "How the plugin runs: `python` (in-process), `process` "
       "(subprocess speaking JSON-RPC), `wasm` (WebAssembly sandbox), `grpc` (gRPC plugin "
       "service), `native` (a shared library implementing include/plughost.h), or the name of "
       "a runtime added to the host (docs/runtimes.md).",
       '`"python"` (see *Runtime inference*)'),
    _f("entry", "entry", "What to start. python: `module:attribute` (the module must exist in "
       "the plugin folder as `module.py` or `module/__init__.py`); process: a command line; "
       "wasm: a relative path to a `.wasm`/`.wat` file in the folder; native: a relative path to "
       "a `.so`/`.dylib`/`.dll` in the folder (inferred from that ending); grpc: a command line "
       "that starts the plugin's gRPC server, or `host:port` of one already running.",
       required=True, aliases=("entryPoint",)),
    _f("host", "range", "plughost versions the plugin works with (npm range syntax). Arcade "
       "`minVersion: X` means `>=X`.", '`"*"`'),
    _f("platforms", "platforms", "Platforms `runtime`/`entry` runs on: `<os>` (a `sys.platform` "
       "prefix: `linux`, `darwin`, `win32`) or `<os>-<arch>` (`linux-x86_64`, `darwin-arm64`; "
       "`amd64`/`aarch64` are accepted); empty means all. Checked by `plughost check`, at "
       "install and at load.", "[]"),
    _f("alternatives", "alternatives", "Other ways to run the plugin, tried in order when the "
       "main `runtime`/`entry` does not fit this machine (its platform, or a runtime this host "
       "lacks): a list of tables `{runtime, entry, platforms}`, e.g. a native library on "
       "Linux and a WebAssembly build elsewhere. The host runs the first that fits and says "
       "which.", "[]"),
    _f("dependencies", "deps", "Plugins this one needs: a table id → version range. Arcade "
       'lists are accepted too: `["a", "b@^1.2", {"id": "c", "version": ">=2"}]`.', "{}"),
    _f("optional-dependencies", "deps", "Plugins used when present (same shapes as "
       "`dependencies`); if present they must satisfy the range.", "{}"),
    _f("provides", "table", "What the plugin offers.", "{}", children=(
        _f("extension-points", "strings", "Extension points (hook specs) it implements.", "[]"),
        _f("commands", "strings", "Command ids it registers.", "[]"),
        _f("events", "strings", "Event topics it emits.", "[]"),
        _f("channels", "strings", "Channel names it serves.", "[]"),
    )),
    _f("activation", "activation", "When to activate: `startup` (eager), `manual` (only when "
       "asked), `command:<id>`, `event:<topic>`, `extension:<name>` (lazily, on first use). A "
       "string or a list.", '`["startup"]`'),
    _f("permissions", "permissions", "Permission scopes requested, `kind[:target]`, kinds: "
       + ", ".join(f"`{k}`" for k in PERMISSION_KINDS) + ". Granted by the operator.", "[]"),
    _f("config", "table", "The plugin's configuration.", "{}", children=(
        _f("schema", "schema", "JSON Schema (an object) the configuration must satisfy. Arcade: "
           "`configSchema`.", "none"),
        _f("defaults", "object", "Default configuration values. Arcade: `defaultConfig`.", "{}"),
    )),
    _f("params-schema", "schema", "JSON Schema (an object) of the parameters the plugin's "
       "calls take; checked as a schema and shown in the API. Arcade: `paramsSchema`.",
       "none"),
    _f("limits", "table", "Resource limits enforced by runtimes that can (others say so at "
       "load time).", "{}", children=(
        _f("timeout", "seconds", "Seconds per call: a number or `\"500ms\"`, `\"2s\"`, "
           "`\"1m\"`.", "none"),
        _f("memory", "bytes", "Memory: bytes as an integer, or `\"128Mi\"`, `\"64MB\"`, "
           "`\"1G\"` (K/M/G/T = powers of 1000, Ki/Mi/Gi/Ti = powers of 1024).", "none"),
        _f("cpu", "seconds", "CPU seconds (same syntax as `timeout`).", "none"),
        _f("fuel", "count", "WebAssembly fuel units per call (a positive integer).", "none"),
        _f("open-files", "count", "Open file descriptors (a positive integer).", "none"),
        _f("output", "bytes", "Bytes per second of stderr/log output (same syntax as "
           "`memory`).", "none"),
        _f("processes", "count", "Processes and threads the plugin may run at once, its own "
           "included (process runtime; default 256).", "none"),
    )),
    _f("resources", "table", "Arcade resource hints (Kubernetes quantities), kept as given.",
       "{}", children=(
        _f("cpu", "hint", "CPU hint, e.g. `\"100m\"`.", "none"),
        _f("memory", "hint", "Memory hint, e.g. `\"128Mi\"`.", "none"),
        _f("disk", "hint", "Disk hint, e.g. `\"50Mi\"`.", "none"),
    )),
)
"""Every manifest field, in document order. Drives validation, ``to_dict``, schema and docs."""

# Arcade keys that land somewhere other than a same-level rename.
_LIFTED: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({
    "configSchema": ("config.schema", "object"),
    "defaultConfig": ("config.defaults", "object"),
    "minVersion": ("host", "version"),
})


def _leaves(fields: tuple[_Field, ...], prefix: str = "") -> Iterator[tuple[str, _Field]]:
    for f in fields:
        if f.kind == "table":
            yield from _leaves(f.children, f"{prefix}{f.key}.")
        else:
            yield f"{prefix}{f.key}", f


_LEAVES: Final = tuple(_leaves(FIELDS))
_LEAF_BY_PATH: Final = dict(_LEAVES)


def _lookup(fields: tuple[_Field, ...], prefix: str) -> dict[str, tuple[str, _Field]]:
    """Accepted key (native or alias) -> (native dotted path, field) for one table level."""
    out: dict[str, tuple[str, _Field]] = {}
    for f in fields:
        for k in (f.key, *f.aliases):
            out[k] = (prefix + f.key, f)
    return out


_TOP_LOOKUP: Final = _lookup(FIELDS, "")
for _key, (_target, _) in _LIFTED.items():
    _TOP_LOOKUP[_key] = (_target, _LEAF_BY_PATH[_target])
_CHILD_LOOKUP: Final = {
    f.key: _lookup(f.children, f.key + ".") for f in FIELDS if f.kind == "table"
}
_NATIVE_KEYS: Final = {
    "": [f.key for f in FIELDS],
    **{f.key: [c.key for c in f.children] for f in FIELDS if f.kind == "table"},
}

_PARTS: Final[Mapping[str, type[Any]]] = MappingProxyType(
    {"provides": Provides, "limits": Limits, "resources": Resources}
)


def _model_attr(native: str) -> tuple[str, str]:
    """Where a field lands in the model: ("", Manifest attribute) or (part, part attribute)."""
    table, _, leaf = native.rpartition(".")
    if table == "config":
        return "", f"config_{leaf}"  # config.schema -> Manifest.config_schema
    return table, leaf.replace("-", "_")


_MODEL_ATTR: Final = {native: _model_attr(native) for native, _ in _LEAVES}


def _defaults_to_none(native: str) -> bool:
    group, attr = _MODEL_ATTR[native]
    model = _PARTS[group] if group else Manifest
    default = next(f.default for f in fields(model) if f.name == attr)
    return default is None


# Fields whose model default is None ("not set"): any value given is written back by
# Manifest.to_dict, an empty schema or a zero included, so that it reads back the same.
_NONE_DEFAULT: Final = frozenset(native for native, _ in _LEAVES if _defaults_to_none(native))
# native dotted path -> its checker (the kind's entry in _CHECKERS), looked up once here.
_CHECK: Final = {native: _CHECKERS[spec.kind] for native, spec in _LEAVES}


# --------------------------------------------------------------------------------------------
# Building a Manifest from a mapping
# --------------------------------------------------------------------------------------------


def _collect(data: Mapping[str, Any], lookup: Mapping[str, tuple[str, _Field]], level: str,
             written_prefix: str, found: dict[str, tuple[str, Any]], extras: dict[str, Any],
             problems: Problems) -> None:
    """Sort the keys of one table into ``found`` (native path -> (written path, value))."""
    for key, value in data.items():
        written = written_prefix + (key if type(key) is str else str(key))
        hit = lookup.get(key)
        if hit is None:
            if isinstance(key, str) and key.startswith("x-"):
                copied = _json_copy(value, written, problems)
                if copied is not _BAD:
                    extras[(level + "." if level else "") + key] = copied
                continue
            candidates = list(lookup) if level == "" else _NATIVE_KEYS[level] + list(lookup)
            problems.append(Problem(
                written, "manifest.unknown_key",
                f"unknown key {key!r}{_did_you_mean(str(key), candidates)}; "
                "prefix private keys with 'x-'"))
            continue
        native, spec = hit
        if spec.kind == "table":
            if isinstance(value, dict):
                _collect(value, _CHILD_LOOKUP[spec.key], spec.key, written + ".", found, extras,
                         problems)
            else:
                _wrong(written, "a table/object", value, problems)
            continue
        if native in found:
            problems.append(Problem(written, "manifest.conflict",
                                    f"{written!r} and {found[native][0]!r} set the same field "
                                    f"{native!r}; keep one"))
            continue
        found[native] = (written, value)


def _build(data: Any, root: str | None, problems: Problems) -> Manifest | None:
    if not isinstance(data, dict):
        _wrong("", "a table/object at the top level", data, problems)
        return None
    found: dict[str, tuple[str, Any]] = {}
    extras: dict[str, Any] = {}
    _collect(data, _TOP_LOOKUP, "", "", found, extras, problems)

    values: dict[str, Any] = {}
    for native, (written, raw) in found.items():
        if native == "host" and written == "minVersion":
            v = _check_version(raw, written, problems)
            values[native] = _BAD if v is _BAD else _range(f">={v}")
            continue
        values[native] = _CHECK[native](raw, written, problems)

    # Identity: Arcade's `name` doubles as the id when no `id` is given.
    plugin_id: Any = values.get("id")
    name: Any = values.get("name")
    if "id" not in found:
        if "name" not in found:
            problems.append(Problem("id", "manifest.required",
                                    "missing: add an 'id' such as 'my-plugin'"))
        elif name is not _BAD:
            if name and _ID_RE.fullmatch(name):
                plugin_id = name
            else:
                problems.append(Problem(found["name"][0], "manifest.id",
                                        f"there is no 'id', so 'name' is used as the id, but "
                                        f"{_id_message(name)}. Add an 'id' field"))
    elif name is None:
        name = plugin_id
    if "version" not in found:
        problems.append(Problem("version", "manifest.required",
                                'missing: add a SemVer version such as "1.0.0"'))
    entry_hit = found.get("entry")
    entry: Any = values.get("entry")
    if entry_hit is None:
        problems.append(Problem("entry", "manifest.required",
                                "missing: name what to start, e.g. 'my_plugin:Plugin' for a "
                                "Python plugin"))
    runtime = values.get("runtime")
    if runtime is None:
        runtime = _infer_runtime(entry, entry_hit is not None and entry_hit[0] == "entryPoint")
    if isinstance(entry, str) and isinstance(runtime, str) and entry_hit is not None:
        _check_entry_for_runtime(entry, runtime, entry_hit[0], root, problems)
    alternatives = values.get("alternatives")
    if alternatives and alternatives is not _BAD:
        for i, alt in enumerate(alternatives):
            _check_entry_for_runtime(alt.entry, alt.runtime,
                                     f"{found['alternatives'][0]}[{i}].entry", root, problems)

    deps = values.get("dependencies")
    opt = values.get("optional-dependencies")
    for table_key, table in (("dependencies", deps), ("optional-dependencies", opt)):
        if table and table is not _BAD and isinstance(plugin_id, str) and plugin_id in table:
            problems.append(Problem(f"{found[table_key][0]}.{plugin_id}", "manifest.dependency",
                                    f"the plugin {plugin_id!r} cannot depend on itself"))
    if deps and opt and deps is not _BAD and opt is not _BAD:
        for dep_id in deps.keys() & opt.keys():
            problems.append(Problem(f"{found['optional-dependencies'][0]}.{dep_id}",
                                    "manifest.dependency",
                                    f"{dep_id!r} is both a required and an optional dependency; "
                                    "keep it in one table"))

    if problems:
        return None
    kwargs: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for native, value in values.items():
        group, attr = _MODEL_ATTR[native]
        if group:
            parts.setdefault(group, {})[attr] = value
        else:
            kwargs[attr] = value
    kwargs["id"] = plugin_id
    kwargs["name"] = name or plugin_id
    kwargs["runtime"] = runtime
    if extras:
        kwargs["extras"] = MappingProxyType(extras)
    for group, values_of_part in parts.items():
        kwargs[group] = _part(group, values_of_part)
    return _manifest(kwargs)


def _raise(problems: Problems, source: str | None, data: Any = None) -> None:
    plugin_id = None
    if isinstance(data, dict):
        candidate = data.get("id", data.get("name"))
        if isinstance(candidate, str) and _ID_RE.fullmatch(candidate):
            plugin_id = candidate
    raise ManifestError(problems, source=source, plugin_id=plugin_id)


def manifest_from_dict(data: Mapping[str, Any], *, source: str | None = None) -> Manifest:
    """Validate an already-parsed manifest (native or Arcade keys) and build the model.

    No plugin folder is known, so files named by ``entry`` are not looked for.

    :raises ManifestError: listing every problem found.
    """
    problems: Problems = []
    # Parsers give dicts and lists; callers may hand over read-only mappings and tuples (e.g.
    # a Manifest's own config mappings). One plain copy keeps the checkers simple and fast.
    if _too_deep(data, problems):
        _raise(problems, source)
    plain = _thaw(data) if isinstance(data, Mapping) else data
    manifest = _build(plain, None, problems)
    if manifest is None:
        _raise(problems, source, plain)
    assert manifest is not None
    return manifest


def manifest_from_plain(data: dict[str, Any], *, source: str | None = None) -> Manifest:
    """:func:`manifest_from_dict` for data that is plain JSON already, as ``json.loads`` gives
    it back from a file plughost wrote from a valid manifest's :meth:`Manifest.to_dict`, when
    nothing proves the file unchanged: validated all the same (a file edited by hand is
    caught), without the defensive copy and the depth walk that foreign mappings need (JSON
    that deep never loads). Where a checksum does show it, :func:`manifest_from_own_dict`.

    :raises ManifestError: listing every problem found.
    """
    problems: Problems = []
    manifest = _build(data, None, problems)
    if manifest is None:
        _raise(problems, source, data)
    assert manifest is not None
    return manifest


def _own_deps(table: dict[str, str]) -> Mapping[str, VersionRange]:
    return MappingProxyType({dep: _range(text) for dep, text in table.items()})


def _own_alternatives(alts: list[dict[str, Any]]) -> tuple[Alternative, ...]:
    return tuple(Alternative(a["runtime"], a["entry"], tuple(a.get("platforms", ())))
                 for a in alts)


# The inverse of _DUMP: a value as Manifest.to_dict wrote it -> the model's value (kinds not
# listed are kept as they are: strings and integers).
_OWN: Final[dict[str, Callable[[Any], Any]]] = {
    "version": _version,
    "range": _range,
    "deps": _own_deps,
    "platforms": tuple,
    "alternatives": _own_alternatives,
    "strings": tuple,
    "activation": tuple,
    "permissions": tuple,
    "object": MappingProxyType,
    "schema": MappingProxyType,
    "seconds": float,
}
# native dotted path -> (part, attribute, loader), for manifest_from_own_dict.
_OWN_FIELDS: Final = {
    native: (*_MODEL_ATTR[native], _OWN.get(spec.kind, _identity)) for native, spec in _LEAVES
}

# the same for top-level fields: key -> (Manifest attribute, loader or None: kept as it is,
# most of them, strings; a call saved per field).
_OWN_TOP: Final = {
    native: (attr, None if load is _identity else load)
    for native, (group, attr, load) in _OWN_FIELDS.items() if not group and "." not in native
}


def manifest_from_own_dict(data: dict[str, Any]) -> Manifest:
    """Rebuild a manifest from what its own :meth:`Manifest.to_dict` wrote, **without
    validating it again**: for data plughost wrote itself from a validated manifest and can
    prove unchanged (the discovery cache checks its file's checksum before it trusts an entry).
    Anything else goes through :func:`manifest_from_plain` or :func:`manifest_from_dict`.

    :raises KeyError, TypeError, ValueError: when ``data`` is not such a dict (a key that is
        not a manifest field, a value of the wrong shape); callers fall back to validating.
    """
    kwargs: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    extras: dict[str, Any] = {}
    for key, value in data.items():
        top = _OWN_TOP.get(key)
        if top is not None:
            attr, load = top
            kwargs[attr] = value if load is None else load(value)
        elif key in _CHILD_LOOKUP:  # a table: provides, config, limits, resources
            for child, inner in value.items():
                if child.startswith("x-"):
                    extras[f"{key}.{child}"] = inner
                    continue
                group, attr, load = _OWN_FIELDS[f"{key}.{child}"]
                (parts.setdefault(group, {}) if group else kwargs)[attr] = load(inner)
        elif key.startswith("x-"):
            extras[key] = value
        else:
            raise KeyError(key)
    for group, values in parts.items():
        kwargs[group] = _part(group, values)
    if extras:
        kwargs["extras"] = MappingProxyType(extras)
    return _manifest(kwargs)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


class _DupDict(dict[str, Any]):
    """A JSON object that remembers which keys it saw more than once."""

    __slots__ = ("dups",)
    dups: list[str]


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = _DupDict(obj)
        dup.dups = []
        for key, _ in pairs:
            if key in seen and key not in dup.dups:
                dup.dups.append(key)
            seen.add(key)
        return dup
    return obj


def _find_dups(value: Any, path: str, problems: Problems) -> None:
    if isinstance(value, dict):
        for key in getattr(value, "dups", ()):
            problems.append(Problem(f"{path}{key}", "manifest.duplicate_key",
                                    f"key {key!r} appears more than once in the same object; "
                                    "JSON would silently keep the last one, so keep just one"))
        for key, item in value.items():
            _find_dups(item, f"{path}{key}.", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _find_dups(item, f"{path.rstrip('.')}[{i}].", problems)


def _too_deep(value: Any, problems: Problems) -> bool:
    """Append ``manifest.too_deep`` when ``value`` nests deeper than MAX_MANIFEST_DEPTH.
    Iterative, so any depth is measured without recursing."""
    if type(value) is dict:  # the usual manifest: leaves and lists of leaves, two levels
        for item in value.values():
            kind = type(item)
            if kind is str or kind is int or kind is bool or kind is float:
                continue
            if kind is list and all(type(x) is str for x in item):
                continue
            break
        else:
            return False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or kind is float:  # most leaves
            continue
        if kind is dict or isinstance(item, Mapping):
            children: Any = item.values()
        elif kind is list or isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= MAX_MANIFEST_DEPTH:
            problems.append(_deep_problem())
            return True
        stack.extend([(child, depth + 1) for child in children
                      if type(child) in _CONTAINERS or not isinstance(child, str | int | float)])
    return False


_CONTAINERS: Final = frozenset((dict, list, tuple))


def _deep_problem() -> Problem:
    return Problem("", "manifest.too_deep",
                   f"tables and arrays nest more than {MAX_MANIFEST_DEPTH} levels deep; "
                   "flatten the data (a manifest needs a few levels)")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; use a finite number")


def _parse(data: bytes | str, fmt: str, problems: Problems) -> Any:
    size = len(data) if isinstance(data, bytes) else (
        len(data) if len(data) * 4 <= MAX_MANIFEST_BYTES else len(data.encode("utf-8", "replace"))
    )
    if size > MAX_MANIFEST_BYTES:
        problems.append(Problem("", "manifest.too_large",
                                f"the manifest is {size} bytes; the limit is "
                                f"{MAX_MANIFEST_BYTES} bytes (64 KiB). Move large data (schemas, "
                                "docs) into separate files"))
        return None
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem("", "manifest.encoding",
                                    f"not valid UTF-8 (byte {exc.start}: {exc.reason}); save the "
                                    "file as UTF-8"))
            return None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark is harmless; editors on Windows add it
    try:
        parsed = _parse_text(text, fmt, problems)
    except RecursionError:  # nesting thousands deep: the parsers recurse
        problems.append(_deep_problem())
        return None
    if parsed is not None and _too_deep(parsed, problems):
        return None
    return parsed


def _toml_parser() -> tuple[Callable[[str], dict[str, Any]], type[ValueError]]:
    """``tomllib``'s ``loads`` and error, or tomli's where it is installed compiled and reads
    the TOML version this Python's ``tomllib`` reads (tomli is the project ``tomllib`` is
    taken from: 2.2 and 2.3 read TOML 1.0 as ``tomllib`` does up to Python 3.14; 2.4 and later
    read TOML 1.1, as ``tomllib`` does from 3.15). A manifest means the same either way; only
    the time differs (a few microseconds instead of twenty for a small manifest)."""
    try:
        import tomli
        import tomli._parser
    except ImportError:
        return tomllib.loads, tomllib.TOMLDecodeError
    version = tuple(int(part) for part in tomli.__version__.split(".")[:2])
    same_toml = (version >= (2, 4)) == (sys.version_info >= (3, 15))
    compiled = not (tomli._parser.__file__ or ".py").endswith(".py")
    if version >= (2, 2) and same_toml and compiled:
        return tomli.loads, tomli.TOMLDecodeError
    return tomllib.loads, tomllib.TOMLDecodeError


_toml: tuple[Callable[[str], dict[str, Any]], type[ValueError]] | None = None


def toml_parser() -> tuple[Callable[[str], dict[str, Any]], type[ValueError]]:
    """The ``loads`` and error manifests are parsed with (:func:`_toml_parser`), chosen at
    the first manifest parsed: importing plughost imports nothing from outside the standard
    library."""
    global _toml
    if _toml is None:
        _toml = _toml_parser()
    return _toml


def _parse_text(text: str, fmt: str, problems: Problems) -> Any:
    if fmt == "toml":
        loads, error = _toml or toml_parser()
        try:
            return loads(text)
        except error as exc:
            msg = str(exc)
            code = ("manifest.duplicate_key"
                    if "Cannot overwrite" in msg or "twice" in msg or "Cannot mutate" in msg
                    else "manifest.syntax")
            problems.append(Problem("", code, f"invalid TOML: {msg}"))
            return None
    if fmt == "json":
        try:
            parsed = json.loads(text, object_pairs_hook=_json_pairs,
                                parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            problems.append(Problem("", "manifest.syntax",
                                    f"invalid JSON: {exc.msg} (at line {exc.lineno}, column "
                                    f"{exc.colno})"))
            return None
        except ValueError as exc:
            problems.append(Problem("", "manifest.syntax", f"invalid JSON: {exc}"))
            return None
        before = len(problems)
        if _json_pairs_had_dups(parsed):
            _find_dups(parsed, "", problems)
        return None if len(problems) > before else parsed
    problems.append(Problem("", "manifest.format",
                            f"format must be 'toml' or 'json', not {fmt!r}"))
    return None


def _json_pairs_had_dups(value: Any) -> bool:
    # Cheap pre-check: only walk the tree for paths when some object saw a duplicate.
    if isinstance(value, _DupDict):
        return True
    if isinstance(value, dict):
        return any(_json_pairs_had_dups(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return any(_json_pairs_had_dups(v) for v in value if isinstance(v, dict | list))
    return False


def parse_manifest(data: bytes | str, *, format: Literal["toml", "json"],
                   source: str | None = None) -> Manifest:
    """Parse and validate manifest text (``plugin.toml`` or ``manifest.json`` content).

    Refuses input over :data:`MAX_MANIFEST_BYTES` before parsing, non-UTF-8 bytes, syntax errors
    and duplicate keys. No plugin folder is known, so files named by ``entry`` are not looked for.

    :param format: ``"toml"`` or ``"json"``.
    :param source: shown in the error (usually the file path).
    :raises ManifestError: listing every problem found.
    """
    return _parse_and_build(data, format, source, None)


def _parse_and_build(data: bytes | str, fmt: str, source: str | None,
                     root: str | None) -> Manifest:
    problems: Problems = []
    parsed = _parse(data, fmt, problems)
    manifest = None if problems else _build(parsed, root, problems)
    if manifest is None:
        _raise(problems, source, parsed)
    assert manifest is not None
    return manifest


def _locate(path: str) -> tuple[str, str]:
    """The manifest file for ``path`` (a folder or a file) and its format.

    Uses ``os.path`` on strings: discovery calls this for every plugin folder, and ``pathlib``
    objects cost several microseconds each.
    """
    # Two stats in the common case (a folder with one manifest): look for the files first.
    present = [f for f in (os.path.join(path, n) for n in MANIFEST_FILES) if os.path.isfile(f)]
    if len(present) == 1:
        file = present[0]
    elif present:
        raise ManifestError([Problem("", "manifest.ambiguous",
                                     f"both {' and '.join(MANIFEST_FILES)} are in "
                                     f"{path!r}; keep exactly one")], source=path)
    elif os.path.isdir(path):
        raise ManifestError([Problem("", "manifest.missing",
                                     f"no {' or '.join(MANIFEST_FILES)} in {path!r}; "
                                     "create one (see docs/manifest.md)")], source=path)
    elif os.path.isfile(path):
        file = path
    else:
        raise ManifestError([Problem("", "manifest.missing", f"{path!r} does not exist")],
                            source=path)
    suffix = os.path.splitext(file)[1].lower()
    if suffix not in (".toml", ".json"):
        raise ManifestError([Problem("", "manifest.format",
                                     f"{os.path.basename(file)!r} is neither .toml nor .json; "
                                     f"name it {' or '.join(MANIFEST_FILES)}")], source=file)
    return file, suffix[1:]


def _read(path: Path | str) -> tuple[str, str, bytes]:
    """(manifest file, format, at most MAX_MANIFEST_BYTES + 1 bytes of it)."""
    file, fmt = _locate(os.fspath(path))
    try:
        with open(file, "rb") as fh:
            return file, fmt, fh.read(MAX_MANIFEST_BYTES + 1)  # enough to refuse, no more
    except OSError as exc:
        raise ManifestError([Problem("", "manifest.unreadable",
                                     f"cannot read {file!r}: {exc.strerror or exc}; check "
                                     "the file's permissions")], source=file) from exc


def load_manifest(path: Path | str) -> Manifest:
    """Load and validate the manifest of a plugin folder, or a manifest file.

    A folder must hold exactly one of :data:`MANIFEST_FILES`. The folder holding the manifest is
    the plugin root: ``entry`` files (python modules, wasm files) must exist in it.

    :raises ManifestError: listing every problem found.
    """
    file, fmt, data = _read(path)
    return _load_read(file, fmt, data)


def _load_read(file: str, fmt: str, data: bytes) -> Manifest:
    """:func:`load_manifest` once the file is found and read: ``file`` is the manifest's path
    as :func:`_locate` gives it, ``data`` at most MAX_MANIFEST_BYTES + 1 bytes of it. For
    discovery, which reads the file itself (its cache checks the bytes it read)."""
    return _parse_and_build(data, fmt, file, os.path.dirname(file) or ".")


def read_manifest_data(path: Path | str) -> dict[str, Any]:
    """The parsed but not yet validated mapping of a manifest folder or file.

    The file-level checks are done (size, UTF-8, syntax, duplicate keys, an object at the top);
    the fields are not. For callers that complete a manifest before validating it with
    :func:`manifest_from_dict`, e.g. an entry-point plugin whose manifest leaves ``entry`` to the
    entry point.

    :raises ManifestError: listing the file-level problems.
    """
    file, fmt, data = _read(path)
    problems: Problems = []
    parsed = _parse(data, fmt, problems)
    if not problems and not isinstance(parsed, dict):
        _wrong("", "a table/object at the top level", parsed, problems)
    if problems:
        raise ManifestError(problems, source=file)
    return parsed  # type: ignore[no-any-return]


def validate_manifest_file(path: Path | str) -> list[Problem]:
    """Every problem with the manifest at ``path`` (a plugin folder or a file); ``[]`` if valid.

    This is what ``plughost check`` reports.
    """
    try:
        load_manifest(path)
    except ManifestError as exc:
        return list(exc.problems)
    return []


# --------------------------------------------------------------------------------------------
# Generated artefacts (implemented in _manifest_schema, which reads FIELDS)
# --------------------------------------------------------------------------------------------


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the manifest, generated from :data:`FIELDS`.

    It accepts the native keys, their camelCase spellings and the Arcade keys, so editors can
    check both ``plugin.toml`` (through a TOML language server) and ``manifest.json``. Checks that
    need the plugin folder or several fields (entry per runtime, self-dependency) are only done
    by :func:`load_manifest`. Committed as ``docs/manifest.schema.json``.
    """
    from plughost.core._manifest_schema import build_json_schema

    return build_json_schema()


def reference_markdown() -> str:
    """The field, Arcade-mapping and problem-code tables of ``docs/manifest.md`` (Markdown)."""
    from plughost.core._manifest_schema import build_reference_markdown

    return build_reference_markdown()
