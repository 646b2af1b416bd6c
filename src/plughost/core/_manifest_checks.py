"""Value checkers for manifest fields (private to :mod:`plughost.core.manifest`).

Each checker takes ``(value, path, problems)``, returns the converted value, or appends a
:class:`~plughost.errors.Problem` (with the field path as written) and returns :data:`_BAD`.
Checkers never raise for bad input: the manifest reports every problem at once.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import math
import os
import re
import shlex
from collections.abc import Callable
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Final

from plughost.core.platforms import PLATFORM_RE, Alternative
from plughost.core.schemarefs import schema_reference_problems
from plughost.core.version import ANY, Version, VersionRange
from plughost.errors import PlughostError, Problem

RUNTIMES: Final = ("python", "process", "wasm", "grpc", "native")
"""The built-in runtimes. Another name is accepted too (a runtime added beside them), unless it
looks like a misspelling of one of these."""
RUNTIME_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""Runtimes a manifest may name in ``runtime``."""

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ID_RE: Final = re.compile(ID_PATTERN)

PERMISSION_KINDS: Final = (
    "fs:read",
    "fs:write",
    "net",
    "storage",
    "events:emit",
    "events:subscribe",
    "commands:execute",
    "commands:register",
    "process:spawn",
    "env",
)
"""Permission scope kinds. A scope is ``kind`` or ``kind:target`` (see :func:`_check_scope`)."""

# Kinds that are meaningless without a target: ``fs:read`` alone would mean "the whole disk".
# Write ``*`` explicitly when a plugin really needs everything of a kind.
_SCOPE_NEEDS_TARGET: Final = frozenset(PERMISSION_KINDS) - {"storage", "process:spawn"}


# --------------------------------------------------------------------------------------------
# Checkers: (value, path, problems) -> converted value, or _BAD after appending a problem
# --------------------------------------------------------------------------------------------

_BAD: Final = object()
Problems = list[Problem]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table/object"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _wrong(path: str, want: str, value: Any, problems: Problems) -> object:
    problems.append(Problem(path, "manifest.type",
                            f"must be {want}, but is {_type_name(value)} ({value!r:.60})"))
    return _BAD


def _check_string(value: Any, path: str, problems: Problems) -> Any:
    if isinstance(value, str):
        return value
    return _wrong(path, "a string", value, problems)


def _check_id(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, str):
        return _wrong(path, "a string", value, problems)
    if _ID_RE.fullmatch(value):
        return value
    problems.append(Problem(path, "manifest.id", _id_message(value)))
    return _BAD


def _id_message(value: str) -> str:
    hint = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("-._")[:64]
    suggestion = f"; for example {hint!r}" if hint and _ID_RE.fullmatch(hint) else ""
    return (f"{value!r} is not a valid plugin id: use 1-64 lowercase letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit{suggestion}")


@functools.lru_cache(maxsize=4096)
def _version(text: str) -> Version:
    return Version(text)


@functools.lru_cache(maxsize=4096)
def _range(text: str) -> VersionRange:
    return VersionRange(text)


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, PlughostError) else str(exc)


def _check_version(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, str):
        return _wrong(path, 'a SemVer string such as "1.0.0"', value, problems)
    try:
        return _version(value)
    except ValueError as exc:  # VersionError, or any ValueError the parser lets through
        problems.append(Problem(path, "manifest.version", _message(exc)))
        return _BAD


def _check_range(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, str):
        return _wrong(path, 'a version range string such as "^1.2"', value, problems)
    try:
        return _range(value)
    except ValueError as exc:  # VersionError, or any ValueError the parser lets through
        problems.append(Problem(path, "manifest.range", _message(exc)))
        return _BAD


def _check_strings(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, list):
        return _wrong(path, "a list of strings", value, problems)
    ok = True
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            _wrong(f"{path}[{i}]", "a non-empty string", item, problems)
            ok = False
    return tuple(value) if ok else _BAD


def _check_platforms(value: Any, path: str, problems: Problems) -> Any:
    value = _check_strings(value, path, problems)
    if value is _BAD:
        return _BAD
    bad = [p for p in value if not PLATFORM_RE.fullmatch(p)]
    for item in bad:
        problems.append(Problem(path, "manifest.platform",
                                f"{item!r} is not a platform: write <os> or <os>-<arch>, e.g. "
                                "'linux', 'linux-x86_64', 'darwin-arm64', 'win32'"))
    return _BAD if bad else value


_ALTERNATIVE_KEYS: Final = ("runtime", "entry", "platforms")


def _check_alternatives(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, list):
        return _wrong(path, "a list of tables {runtime, entry, platforms}", value, problems)
    out: list[Alternative] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            _wrong(where, "a table {runtime, entry, platforms}", item, problems)
            continue
        before = len(problems)
        for key in item.keys() - set(_ALTERNATIVE_KEYS):
            problems.append(Problem(f"{where}.{key}", "manifest.unknown_key",
                                    f"unknown key {key!r}; an alternative has "
                                    f"{', '.join(_ALTERNATIVE_KEYS)}"))
        for key in ("runtime", "entry"):
            if key not in item:
                problems.append(Problem(f"{where}.{key}", "manifest.required",
                                        f"missing: an alternative names its {key}"))
        runtime = _check_runtime(item.get("runtime", "python"), f"{where}.runtime", problems)
        entry = _check_entry(item.get("entry", "x"), f"{where}.entry", problems)
        platforms = _check_platforms(item.get("platforms", []), f"{where}.platforms", problems)
        if len(problems) == before:
            out.append(Alternative(runtime, entry, tuple(platforms)))
    return tuple(out) if len(out) == len(value) else _BAD


def _check_runtime(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, str):
        return _wrong(path, "a string", value, problems)
    if value in RUNTIMES:
        return value
    hint = _did_you_mean(value, RUNTIMES)
    if hint or not RUNTIME_NAME_RE.fullmatch(value):
        problems.append(Problem(path, "manifest.runtime",
                                f"unknown runtime {value!r}{hint}; the built-in runtimes are "
                                f"{', '.join(RUNTIMES)} (another runtime's name is lowercase "
                                "letters, digits, '-' and '_')"))
        return _BAD
    # A runtime added beside the built-in ones (docs/runtimes.md): the host that loads the
    # plugin says whether it has it (runtime.unavailable otherwise).
    return value


def _check_entry(value: Any, path: str, problems: Problems) -> Any:
    # Runtime-specific checks happen once the runtime is known (_check_entry_for_runtime).
    if not isinstance(value, str):
        return _wrong(path, "a string", value, problems)
    if not value.strip():
        problems.append(Problem(path, "manifest.required",
                                "must not be empty: name what the runtime should start"))
        return _BAD
    return value


def _dep_item(value: Any, path: str, problems: Problems) -> tuple[str, Any] | None:
    """One Arcade list item: ``"id"``, ``"id@range"`` or ``{"id"|"name": ..., "version": ...}``."""
    if isinstance(value, str):
        dep_id, at, spec = value.partition("@")
        dep_id = dep_id.strip()
        if at and not spec.strip():
            problems.append(Problem(path, "manifest.range",
                                    f"{value!r} has an '@' but no range after it; write "
                                    f"'{dep_id}@^1.0' or just '{dep_id}'"))
            return None
        return dep_id, (spec.strip() if at else None)
    if isinstance(value, dict):
        ok = True
        for key in value:
            if key not in ("id", "name", "version"):
                problems.append(Problem(f"{path}.{key}", "manifest.unknown_key",
                                        f"unknown key {key!r} in a dependency"
                                        f"{_did_you_mean(key, ('id', 'name', 'version'))}; "
                                        "a dependency object has 'id' (or 'name') and 'version'"))
                ok = False
        raw_id: Any = value.get("id", value.get("name"))
        if "id" in value and "name" in value and value["id"] != value["name"]:
            problems.append(Problem(path, "manifest.conflict",
                                    "a dependency object gives both 'id' and 'name' and they "
                                    "differ; keep 'id'"))
            ok = False
        if raw_id is None:
            problems.append(Problem(path, "manifest.required",
                                    "a dependency object needs 'id' (or 'name')"))
            return None
        if not isinstance(raw_id, str):
            _wrong(path + ".id", "a string", raw_id, problems)
            return None
        return (raw_id, value.get("version")) if ok else None
    _wrong(path, 'a dependency ("id", "id@range" or {"id": ..., "version": ...})', value,
           problems)
    return None


def _check_deps(value: Any, path: str, problems: Problems) -> Any:
    pairs: list[tuple[str, str, Any]] = []  # (id, path, raw range)
    if isinstance(value, dict):
        for dep_id, spec in value.items():
            item_path = f"{path}.{dep_id}"
            if isinstance(spec, dict):  # Cargo habit: name = { version = "^1" }
                got = _dep_item({"id": dep_id, **spec}, item_path, problems)
                if got is not None:
                    pairs.append((dep_id, item_path, got[1]))
            else:
                pairs.append((dep_id, item_path, spec))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            got = _dep_item(item, f"{path}[{i}]", problems)
            if got is not None:
                pairs.append((got[0], f"{path}.{got[0]}" if got[0] else f"{path}[{i}]", got[1]))
    else:
        return _wrong(path, "a table of id → version range (or an Arcade list)", value, problems)
    out: dict[str, VersionRange] = {}
    ok = True
    for dep_id, item_path, spec in pairs:
        if not _ID_RE.fullmatch(dep_id):
            problems.append(Problem(item_path, "manifest.id", _id_message(dep_id)))
            ok = False
            continue
        if dep_id in out:
            problems.append(Problem(item_path, "manifest.duplicate_key",
                                    f"dependency {dep_id!r} is listed more than once; "
                                    "keep one entry with the combined range"))
            ok = False
            continue
        rng = ANY if spec is None else _check_range(spec, item_path, problems)
        if rng is _BAD:
            ok = False
        else:
            out[dep_id] = rng
    return MappingProxyType(out) if ok else _BAD


_ACTIVATION_PREFIXES: Final = ("command:", "event:", "extension:")


def _check_activation(value: Any, path: str, problems: Problems) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return _wrong(path, "a string or a list of strings", value, problems)
    if not items:
        problems.append(Problem(path, "manifest.activation",
                                'is empty: use "manual" for a plugin that is only activated on '
                                'request, or leave it out for "startup"'))
        return _BAD
    ok = True
    for i, item in enumerate(items):
        where = path if isinstance(value, str) else f"{path}[{i}]"
        if not isinstance(item, str):
            _wrong(where, "a string", item, problems)
            ok = False
            continue
        if item in ("startup", "manual"):
            continue
        prefix, sep, rest = item.partition(":")
        if sep and prefix + ":" in _ACTIVATION_PREFIXES and rest and not _has_space(rest):
            continue
        problems.append(Problem(where, "manifest.activation",
                                f"{item!r} is not an activation trigger; use 'startup', "
                                "'manual', 'command:<id>', 'event:<topic>' or "
                                "'extension:<name>'"))
        ok = False
    if ok and "manual" in items and len(items) > 1:
        problems.append(Problem(path, "manifest.activation",
                                "'manual' cannot be combined with other triggers: it means "
                                "'only when asked'; remove it or the others"))
        ok = False
    return tuple(items) if ok else _BAD


_SPACE_RE: Final = re.compile(r"[\s\x00-\x1f]")


def _has_space(text: str) -> bool:
    return _SPACE_RE.search(text) is not None


def _check_scope(scope: str) -> str | None:
    """Syntax-level check of one permission scope; returns a message or None when fine."""
    if not scope or _has_space(scope):
        return f"{scope!r} is empty or contains whitespace/control characters"
    for kind in sorted(PERMISSION_KINDS, key=len, reverse=True):
        if scope == kind:
            if kind in _SCOPE_NEEDS_TARGET:
                return (f"{scope!r} needs a target: write '{kind}:<target>' "
                        f"(or '{kind}:*' for all)")
            return None
        if scope.startswith(kind + ":"):
            if not scope[len(kind) + 1:]:
                return f"{scope!r} has an empty target after '{kind}:'"
            return None
    parts = scope.split(":")
    head = parts[0]
    hint = _did_you_mean(":".join(parts[:2]), PERMISSION_KINDS) or _did_you_mean(
        head, PERMISSION_KINDS)
    return (f"{scope!r} has an unknown kind{hint}; "
            f"kinds are {', '.join(PERMISSION_KINDS)}" if head else
            f"{scope!r} must start with a kind")


def _check_permissions(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, list):
        return _wrong(path, "a list of permission scopes", value, problems)
    ok = True
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _wrong(f"{path}[{i}]", "a string", item, problems)
            ok = False
            continue
        message = _check_scope(item)
        if message:
            problems.append(Problem(f"{path}[{i}]", "manifest.permission", message))
            ok = False
    return tuple(value) if ok else _BAD


def _json_copy(value: Any, path: str, problems: Problems) -> Any:
    """A private deep copy of JSON-representable data; anything else is a problem."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        problems.append(Problem(path, "manifest.type",
                                f"{value!r} is not representable in JSON; use a finite number"))
        return _BAD
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k] = _json_copy(v, f"{path}.{k}", problems)
        return out
    if isinstance(value, list):
        return [_json_copy(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    problems.append(Problem(path, "manifest.type",
                            f"{_type_name(value)} is not representable in JSON; write it as a "
                            "string"))
    return _BAD


def _check_object(value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, dict):
        return _wrong(path, "a table/object", value, problems)
    before = len(problems)
    copied = _json_copy(value, path, problems)
    return MappingProxyType(copied) if len(problems) == before else _BAD


_JSON_TYPES: Final = frozenset(
    {"object", "array", "string", "number", "integer", "boolean", "null"}
)


def _check_schema(value: Any, path: str, problems: Problems) -> Any:
    """The config schema must be a JSON Schema object; check the parts the host relies on."""
    result = _check_object(value, path, problems)
    if result is _BAD:
        return _BAD
    before = len(problems)
    types = value.get("type")
    for t in types if isinstance(types, list) else [types]:
        if t is not None and (not isinstance(t, str) or t not in _JSON_TYPES):
            problems.append(Problem(f"{path}.type", "manifest.config",
                                    f"{t!r} is not a JSON Schema type; use one of "
                                    f"{', '.join(sorted(_JSON_TYPES))}"))
    props = value.get("properties")
    if props is not None and not (
        isinstance(props, dict) and all(isinstance(p, dict | bool) for p in props.values())
    ):
        problems.append(Problem(f"{path}.properties", "manifest.config",
                                "must be an object mapping each property name to a schema"))
    required = value.get("required")
    if required is not None:
        if not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
            problems.append(Problem(f"{path}.required", "manifest.config",
                                    "must be a list of property names"))
        elif isinstance(props, dict) and value.get("additionalProperties") is False:
            for name in required:
                if name not in props:
                    problems.append(Problem(f"{path}.required", "manifest.config",
                                            f"{name!r} is required but not in 'properties' and "
                                            "additionalProperties is false: no config could "
                                            "ever be valid"))
    # A reference outside the schema would make the host read files or fetch URLs when it
    # validates the config: refused here, so such a package never installs.
    for where, message in schema_reference_problems(value):
        problems.append(Problem(_schema_path(path, where), "manifest.config", message))
    return result if len(problems) == before else _BAD


def _schema_path(path: str, parts: tuple[str | int, ...]) -> str:
    out = path
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# The unit alternatives are exactly the keys of _SIZE_UNITS (case-insensitive); the JSON Schema
# reuses this pattern, so it must stay ECMA-262 compatible (no inline flags).
_SIZE_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*((?:[kKmMgGtT][iI]?)?[bB]?)\s*$")
_SIZE_UNITS: Final = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40,
}
_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS: Final = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _limit_problem(path: str, value: Any, want: str, problems: Problems) -> object:
    problems.append(Problem(path, "manifest.limit", f"{value!r} is not {want}"))
    return _BAD


def _check_bytes(value: Any, path: str, problems: Problems) -> Any:
    want = 'a positive size: bytes as an integer, or a string like "128Mi", "64MB", "1G"'
    if isinstance(value, bool):
        return _limit_problem(path, value, want, problems)
    if isinstance(value, int):
        return value if value > 0 else _limit_problem(path, value, want, problems)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        unit = _SIZE_UNITS.get(m.group(2).lower()) if m else None
        if m and unit is not None:
            size = int(float(m.group(1)) * unit)
            if size > 0:
                return size
    return _limit_problem(path, value, want, problems)


def _check_seconds(value: Any, path: str, problems: Problems) -> Any:
    want = 'a positive duration: seconds as a number, or a string like "500ms", "2s", "1m"'
    if isinstance(value, bool):
        return _limit_problem(path, value, want, problems)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        return _limit_problem(path, value, want, problems)
    if seconds > 0 and math.isfinite(seconds):
        return seconds
    return _limit_problem(path, value, want, problems)


def _check_count(value: Any, path: str, problems: Problems) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return _limit_problem(path, value, "a positive integer", problems)


def _check_hint(value: Any, path: str, problems: Problems) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _wrong(path, 'a quantity string such as "128Mi"', value, problems)


_CHECKERS: Final[dict[str, Callable[[Any, str, Problems], Any]]] = {
    "id": _check_id,
    "string": _check_string,
    "version": _check_version,
    "range": _check_range,
    "strings": _check_strings,
    "runtime": _check_runtime,
    "entry": _check_entry,
    "deps": _check_deps,
    "platforms": _check_platforms,
    "alternatives": _check_alternatives,
    "activation": _check_activation,
    "permissions": _check_permissions,
    "object": _check_object,
    "schema": _check_schema,
    "bytes": _check_bytes,
    "seconds": _check_seconds,
    "count": _check_count,
    "hint": _check_hint,
}


def _did_you_mean(word: str, candidates: Any) -> str:
    candidates = list(candidates)
    for variant in (word.replace("_", "-"), word.lower(), word.replace("_", "-").lower()):
        if variant != word and variant in candidates:
            return f" (did you mean {variant!r}?)"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in candidates], n=1,
                                          cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# Entry checks (need the runtime, and the plugin folder when there is one)
# --------------------------------------------------------------------------------------------

_PY_ENTRY_RE: Final = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")
_GRPC_RE: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                             r":(\d{1,5})$")


NATIVE_SUFFIXES: Final = (".so", ".dylib", ".dll")
"""File endings of the shared libraries the ``native`` runtime loads."""


def _infer_runtime(entry: Any, arcade_entry: bool) -> str:
    if isinstance(entry, str):
        if entry.endswith((".wasm", ".wat")):
            return "wasm"
        if entry.endswith(NATIVE_SUFFIXES):  # a shared library: never a program on PATH
            return "native"
        if arcade_entry and not _PY_ENTRY_RE.fullmatch(entry):
            return "process"
    return "python"


def _check_entry_for_runtime(entry: str, runtime: str, path: str, root: str | None,
                             problems: Problems) -> None:
    message = entry_problem(runtime, entry, root)
    if message is not None:
        problems.append(Problem(path, "manifest.entry", message))


def entry_problem(runtime: str, entry: str, root: str | None) -> str | None:
    """What is wrong with ``entry`` for one of the built-in runtimes (``None``: nothing).

    The built-in runtimes' ``check_entry`` answer with this, and the manifest check asks it too
    so that ``plughost check`` reports a bad entry before anything is loaded. A runtime added
    later checks its entry itself (``Runtime.check_entry``); this answers ``None`` for it.
    """
    if runtime == "python":
        module = _python_module(entry)
        if module is None:
            return (f"{entry!r} is not 'module:attribute' (a dotted module path, a colon, an "
                    "identifier), e.g. 'hello.plugin:HelloPlugin'")
        if root is not None:
            name, rel = module
            base = os.path.join(root, rel)
            if not (os.path.isfile(base + ".py")
                    or os.path.isfile(os.path.join(base, "__init__.py"))):
                shown = rel.replace(os.sep, "/")
                return (f"module {name!r} is not in the plugin folder {root!r}: expected "
                        f"{shown}.py or {shown}/__init__.py")
    elif runtime == "process":
        try:
            argv = shlex.split(entry)
        except ValueError as exc:
            return f"{entry!r} is not a valid command line ({exc}); check the quotes"
        if not argv:
            return "the command line is empty; name the program to run"
    elif runtime in ("wasm", "native"):
        suffixes = (".wasm", ".wat") if runtime == "wasm" else NATIVE_SUFFIXES
        if not entry.endswith(suffixes):
            kinds = ("a .wasm or .wat file" if runtime == "wasm"
                     else "a shared library (.so, .dylib or .dll)")
            return f"{entry!r} must be {kinds}"
        rel_path = PurePosixPath(entry.replace("\\", "/"))
        if rel_path.is_absolute() or ".." in rel_path.parts or re.match(r"^[A-Za-z]:", entry):
            return f"{entry!r} must be a relative path inside the plugin folder"
        if root is not None and not os.path.isfile(os.path.join(root, *rel_path.parts)):
            return f"{entry!r} does not exist in the plugin folder {root!r}"
    elif runtime == "grpc":
        m = _GRPC_RE.fullmatch(entry)
        if m and not 0 < int(m.group(2)) < 65536:
            return f"{entry!r}: the port must be 1-65535, e.g. '127.0.0.1:50051'"
        if entry.startswith("unix:") and not entry[5:].startswith("/"):
            return f"{entry!r}: a Unix socket address is 'unix:/absolute/path'"
        if grpc_address(entry) is None:  # a command line that starts the plugin's server
            return entry_problem("process", entry, root)
    return None


@functools.lru_cache(maxsize=1024)
def _python_module(entry: str) -> tuple[str, str] | None:
    """(dotted module, its path relative to the plugin folder) of a python ``entry``, or
    ``None`` when it is not ``module:attribute``. Remembered: thousands of plugins share a
    handful of entries (``main:Main``)."""
    m = _PY_ENTRY_RE.fullmatch(entry)
    if m is None:
        return None
    modules = m.group(1).split(".")
    if any(keyword.iskeyword(p) for p in (*modules, m.group(2))):
        return None
    return m.group(1), os.path.join(*modules)


def grpc_address(entry: str) -> str | None:
    """The address a ``grpc`` entry attaches to (``host:port``, ``unix:/path``), or ``None``
    when the entry is a command line the host starts."""
    entry = entry.strip()
    if entry.startswith("unix:/"):
        return entry
    return entry if _GRPC_RE.fullmatch(entry) else None
