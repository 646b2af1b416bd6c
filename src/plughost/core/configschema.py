"""A plugin's effective configuration and its validation: the one rule, standard library only.

Everything that decides whether a plugin's configuration is acceptable lives here, so the
service (:mod:`plughost.services.config`), an embedded :class:`~plughost.host.PluginHost` and
the plugin author's test host (:mod:`plughost.sdk.testing`) give the same answer for the same
values: ``unit = "K"`` against ``enum ["C", "F"]`` is refused by all three, with the same
problems.

* **Effective config** = ``schema defaults ← manifest config.defaults ← operator settings``
  (deep-merged, right wins): :func:`effective_config`.
* **Validation** against the plugin's JSON Schema, draft 2020-12 (:func:`validate_config`): every
  violation is a :class:`~plughost.errors.Problem` with its JSON path and the code
  ``config.<keyword>``; secret values (``x-secret`` / ``writeOnly``) never appear in a message.
  References resolve only inside the schema (``#/$defs/x``, ``#anchor``, an embedded ``$id``);
  nothing is fetched or read (the rule is :mod:`plughost.core.schemarefs`).

The validator implements the draft 2020-12 validation vocabulary (types, ``enum``/``const``,
numeric and string bounds, ``pattern``, ``format`` for the formats below, arrays, objects,
``allOf``/``anyOf``/``oneOf``/``not``, ``if``/``then``/``else``, ``dependentRequired``/
``dependentSchemas``, ``unevaluatedProperties``/``unevaluatedItems``, ``$ref``/``$dynamicRef``).
Formats checked (pure functions of the value, no DNS): ``date``, ``date-time``, ``time``,
``duration``, ``email``, ``idn-email``, ``hostname``, ``ipv4``, ``ipv6``, ``uuid``, ``regex``,
``uri``, ``uri-reference``, ``json-pointer``, ``relative-json-pointer``; other formats are
annotations.
"""

from __future__ import annotations

import copy
import datetime as _dt
import ipaddress
import json
import math
import re
import uuid as _uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from plughost.errors import ConfigInvalid, Problem

__all__ = [
    "REDACTED",
    "SchemaViolation",
    "check_config",
    "deep_merge",
    "effective_config",
    "json_path",
    "redact",
    "schema_defaults",
    "scrub",
    "secret_paths",
    "secret_strings",
    "validate_config",
    "violations",
]

REDACTED: Final = "***"


# --------------------------------------------------------------------------- merging


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def schema_defaults(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``default`` of every property, recursively through nested object properties."""
    out: dict[str, Any] = {}
    if not isinstance(schema, Mapping):
        return out
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        if "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        elif sub.get("properties"):
            nested = schema_defaults(sub)
            if nested:
                out[name] = nested
    return out


def effective_config(
    schema: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None,
    settings: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``schema defaults ← defaults ← settings``, deep-merged (right wins)."""
    return deep_merge(deep_merge(schema_defaults(schema), defaults or {}), settings or {})


# --------------------------------------------------------------------------- secrets


def secret_paths(schema: Mapping[str, Any] | None) -> list[tuple[str, ...]]:
    """Property paths marked ``x-secret: true`` or ``writeOnly: true``."""
    found: list[tuple[str, ...]] = []

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if not isinstance(node, Mapping):
            return
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, Mapping):
                continue
            path = (*prefix, name)
            if sub.get("x-secret") is True or sub.get("writeOnly") is True:
                found.append(path)
            else:
                walk(sub, path)

    walk(schema, ())
    return found


def redact(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """A copy of ``value`` with every secret property replaced by ``"***"``."""
    out = copy.deepcopy(value)
    for path in secret_paths(schema):
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(path[-1]) is not None:
            node[path[-1]] = REDACTED
    return out


def secret_strings(value: Any, schema: Mapping[str, Any] | None) -> list[str]:
    """The concrete secret values (as text) in ``value``, longest first, for scrubbing messages."""
    texts: list[str] = []
    for path in secret_paths(schema):
        node = value
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            continue
        leaves = [node] if not isinstance(node, Mapping | list) else [json.dumps(node)]
        texts.extend(str(leaf) for leaf in leaves if str(leaf))
    return sorted(set(texts), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret string replaced by ``"***"``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def json_path(parts: tuple[Any, ...] | list[Any]) -> str:
    """``$.a.b[0]["odd key"]`` for a path of keys and indexes."""
    out = "$"
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One place where an instance does not satisfy its schema."""

    path: tuple[Any, ...]
    keyword: str
    value: Any
    message: str


class Unresolvable(Exception):
    """A ``$ref`` that does not point inside the schema."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


# Keywords whose messages name keys, never values: safe to show even above a secret.
_KEY_ONLY: Final = frozenset({
    "required", "additionalProperties", "unevaluatedProperties", "dependentRequired",
    "propertyNames", "minProperties", "maxProperties",
})
_TYPES: Final = ("null", "boolean", "object", "array", "number", "string", "integer")
_DATA: Final = frozenset({"const", "enum", "default", "examples"})
_MAPS: Final = frozenset({"properties", "patternProperties", "$defs", "definitions",
                          "dependentSchemas"})


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list | tuple)
    if name == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return False


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return bool(a is None and b is None)


class _Resources:
    """Every place a reference may land inside one schema: ``$id`` documents and anchors."""

    def __init__(self, root: Any) -> None:
        self.documents: dict[str, Any] = {"": root}
        self.anchors: dict[tuple[str, str], Any] = {}
        self.base_of: dict[int, str] = {}
        stack: list[tuple[Any, str]] = [(root, "")]
        while stack:
            node, base = stack.pop()
            if isinstance(node, list):
                stack.extend((item, base) for item in node)
                continue
            if not isinstance(node, Mapping):
                continue
            sid = node.get("$id")
            if isinstance(sid, str) and sid:
                base = urldefrag(urljoin(base, sid))[0]
                self.documents.setdefault(base, node)
            self.base_of[id(node)] = base
            for key in ("$anchor", "$dynamicAnchor"):
                anchor = node.get(key)
                if isinstance(anchor, str):
                    self.anchors.setdefault((base, anchor), node)
            for key, value in node.items():
                if key in _DATA or not isinstance(value, dict | list):
                    continue
                if key in _MAPS and isinstance(value, Mapping):
                    stack.extend((sub, base) for sub in value.values())
                else:
                    stack.append((value, base))

    def resolve(self, base: str, ref: str) -> tuple[Any, str]:
        target = urljoin(base, ref)
        document, fragment = urldefrag(target)
        if document not in self.documents:
            raise Unresolvable(ref)
        node = self.documents[document]
        if fragment.startswith("/") or fragment == "":
            for token in fragment.split("/")[1:]:
                token = unquote(token).replace("~1", "/").replace("~0", "~")
                if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                elif isinstance(node, Mapping) and token in node:
                    node = node[token]
                else:
                    raise Unresolvable(ref)
        else:
            if (document, fragment) not in self.anchors:
                raise Unresolvable(ref)
            node = self.anchors[(document, fragment)]
        return node, self.base_of.get(id(node), document)


@dataclass(slots=True)
class _Result:
    errors: list[SchemaViolation]
    properties: set[str]  # evaluated property names (for unevaluatedProperties)
    items: int  # evaluated leading items (for unevaluatedItems); -1 = all

    def merge(self, other: _Result) -> None:
        self.properties |= other.properties
        if other.items == -1 or self.items == -1:
            self.items = -1
        else:
            self.items = max(self.items, other.items)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


class _Validator:
    def __init__(self, schema: Any) -> None:
        self.root = schema
        self.resources = _Resources(schema)

    def run(self, instance: Any) -> list[SchemaViolation]:
        return self.check(instance, self.root, (), self.resources.base_of.get(id(self.root), "")
                          ).errors

    def check(self, inst: Any, schema: Any, path: tuple[Any, ...], base: str) -> _Result:
        result = _Result([], set(), 0)
        if schema is True or (isinstance(schema, Mapping) and not schema):
            return result
        if schema is False:
            result.errors.append(SchemaViolation(path, "false", False,
                                                 f"False schema does not allow {_show(inst)}"))
            return result
        if not isinstance(schema, Mapping):
            return result
        base = self.resources.base_of.get(id(schema), base)
        errors = result.errors

        def fail(keyword: str, message: str, where: tuple[Any, ...] = path) -> None:
            errors.append(SchemaViolation(where, keyword, schema.get(keyword), message))

        for keyword in ("$ref", "$dynamicRef"):
            ref = schema.get(keyword)
            if isinstance(ref, str):
                target, target_base = self.resources.resolve(base, ref)
                sub = self.check(inst, target, path, target_base)
                errors.extend(sub.errors)
                result.merge(sub)

        # ---- any type
        if "type" in schema:
            wanted = schema["type"]
            names = wanted if isinstance(wanted, list) else [wanted]
            if not any(_is_type(inst, n) for n in names if n in _TYPES):
                shown = ", ".join(repr(n) for n in names) if isinstance(wanted, list) \
                    else repr(wanted)
                fail("type", f"{_show(inst)} is not of type {shown}")
        if "enum" in schema and isinstance(schema["enum"], list) \
                and not any(_equal(inst, e) for e in schema["enum"]):
            fail("enum", f"{_show(inst)} is not one of {_show(schema['enum'])}")
        if "const" in schema and not _equal(inst, schema["const"]):
            fail("const", f"{_show(schema['const'])} was expected")

        # ---- numbers
        if _is_type(inst, "number"):
            self._numbers(inst, schema, fail)
        # ---- strings
        if isinstance(inst, str):
            self._strings(inst, schema, fail)
        # ---- arrays
        if isinstance(inst, list | tuple):
            self._arrays(inst, schema, path, base, result, fail)
        # ---- objects
        if isinstance(inst, Mapping):
            self._objects(inst, schema, path, base, result, fail)

        # ---- applicators
        for sub_schema in schema.get("allOf") or ():
            sub = self.check(inst, sub_schema, path, base)
            errors.extend(sub.errors)
            result.merge(sub)
        if isinstance(schema.get("anyOf"), list):
            passed = [r for r in (self.check(inst, s, path, base) for s in schema["anyOf"])
                      if not r.errors]
            if not passed:
                fail("anyOf", f"{_show(inst)} is not valid under any of the given schemas")
            for r in passed:
                result.merge(r)
        if isinstance(schema.get("oneOf"), list):
            passed = [r for r in (self.check(inst, s, path, base) for s in schema["oneOf"])
                      if not r.errors]
            if not passed:
                fail("oneOf", f"{_show(inst)} is not valid under any of the given schemas")
            elif len(passed) > 1:
                fail("oneOf", f"{_show(inst)} is valid under each of {len(passed)} of the "
                              "given schemas")
            else:
                result.merge(passed[0])
        if "not" in schema and not self.check(inst, schema["not"], path, base).errors:
            fail("not", f"{_show(inst)} should not be valid under {_show(schema['not'])}")
        if "if" in schema:
            condition = self.check(inst, schema["if"], path, base)
            branch = "then" if not condition.errors else "else"
            if not condition.errors:
                result.merge(condition)
            if branch in schema:
                sub = self.check(inst, schema[branch], path, base)
                errors.extend(sub.errors)
                result.merge(sub)

        # ---- unevaluated (after every applicator above has annotated)
        if isinstance(inst, Mapping) and "unevaluatedProperties" in schema:
            for name in sorted(set(inst) - result.properties):
                sub = self.check(inst[name], schema["unevaluatedProperties"], (*path, name), base)
                if sub.errors:
                    if schema["unevaluatedProperties"] is False:
                        fail("unevaluatedProperties",
                             f"Unevaluated properties are not allowed ({name!r} was unexpected)")
                    else:
                        errors.extend(sub.errors)
            result.properties |= set(inst)
        if isinstance(inst, list | tuple) and "unevaluatedItems" in schema \
                and result.items != -1:
            for index in range(result.items, len(inst)):
                sub = self.check(inst[index], schema["unevaluatedItems"], (*path, index), base)
                if sub.errors:
                    if schema["unevaluatedItems"] is False:
                        fail("unevaluatedItems",
                             f"Unevaluated items are not allowed ({_show(inst[index])} was "
                             "unexpected)")
                        break
                    errors.extend(sub.errors)
            result.items = -1
        return result

    def _numbers(self, inst: Any, schema: Mapping[str, Any], fail: Any) -> None:
        def num(key: str) -> Any:
            bound = schema.get(key)
            return bound if _is_type(bound, "number") else None

        if (bound := num("minimum")) is not None and inst < bound:
            fail("minimum", f"{inst!r} is less than the minimum of {bound!r}")
        if (bound := num("maximum")) is not None and inst > bound:
            fail("maximum", f"{inst!r} is greater than the maximum of {bound!r}")
        if (bound := num("exclusiveMinimum")) is not None and inst <= bound:
            fail("exclusiveMinimum",
                 f"{inst!r} is less than or equal to the minimum of {bound!r}")
        if (bound := num("exclusiveMaximum")) is not None and inst >= bound:
            fail("exclusiveMaximum",
                 f"{inst!r} is greater than or equal to the maximum of {bound!r}")
        if (step := num("multipleOf")) is not None and step > 0:
            if isinstance(step, float) or isinstance(inst, float):
                try:
                    quotient = inst / step
                    bad = not math.isfinite(quotient) or int(quotient) != quotient
                except OverflowError:
                    bad = True
            else:
                bad = inst % step != 0
            if bad:
                fail("multipleOf", f"{inst!r} is not a multiple of {step!r}")

    def _strings(self, inst: str, schema: Mapping[str, Any], fail: Any) -> None:
        length = len(inst)
        if isinstance(schema.get("minLength"), int) and length < schema["minLength"]:
            fail("minLength", f"{_show(inst)} is too short")
        if isinstance(schema.get("maxLength"), int) and length > schema["maxLength"]:
            fail("maxLength", f"{_show(inst)} is too long")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                matched = re.search(pattern, inst) is not None
            except re.error:
                matched = True  # the manifest check refuses a bad pattern; never crash here
            if not matched:
                fail("pattern", f"{_show(inst)} does not match {pattern!r}")
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS and not _FORMATS[fmt](inst):
            fail("format", f"{_show(inst)} is not a {fmt!r}")

    def _arrays(self, inst: Any, schema: Mapping[str, Any], path: tuple[Any, ...], base: str,
                result: _Result, fail: Any) -> None:
        errors = result.errors
        if isinstance(schema.get("minItems"), int) and len(inst) < schema["minItems"]:
            fail("minItems", f"{_show(inst)} is too short")
        if isinstance(schema.get("maxItems"), int) and len(inst) > schema["maxItems"]:
            fail("maxItems", f"{_show(inst)} is too long")
        if schema.get("uniqueItems") is True:
            for i in range(len(inst)):
                if any(_equal(inst[i], inst[j]) for j in range(i)):
                    fail("uniqueItems", f"{_show(inst)} has non-unique elements")
                    break
        prefix = schema.get("prefixItems")
        done = 0
        if isinstance(prefix, list):
            for index, (item, sub_schema) in enumerate(zip(inst, prefix, strict=False)):
                errors.extend(self.check(item, sub_schema, (*path, index), base).errors)
            done = min(len(prefix), len(inst))
            result.items = max(result.items, done) if result.items != -1 else -1
        if "items" in schema:
            extra = inst[done:]
            if schema["items"] is False and extra:
                fail("items", f"Expected at most {done} {_plural('item', done)} but found "
                              f"{len(extra)} extra: {_show(list(extra))}")
            else:
                for index in range(done, len(inst)):
                    errors.extend(
                        self.check(inst[index], schema["items"], (*path, index), base).errors)
            result.items = -1
        if "contains" in schema:
            matches = 0
            for index, item in enumerate(inst):
                if not self.check(item, schema["contains"], (*path, index), base).errors:
                    matches += 1
            low = schema.get("minContains", 1)
            high = schema.get("maxContains")
            if matches < (low if isinstance(low, int) else 1):
                if matches == 0:
                    fail("contains", f"{_show(inst)} does not contain items matching the "
                                     "given schema")
                else:
                    fail("minContains", f"Too few items match the given schema (expected at "
                                        f"least {low} but only {matches} matched)")
            elif isinstance(high, int) and matches > high:
                fail("maxContains", f"Too many items match the given schema (expected at most "
                                    f"{high})")

    def _objects(self, inst: Mapping[str, Any], schema: Mapping[str, Any],
                 path: tuple[Any, ...], base: str, result: _Result, fail: Any) -> None:
        errors = result.errors
        if isinstance(schema.get("required"), list):
            for name in schema["required"]:
                if isinstance(name, str) and name not in inst:
                    fail("required", f"{name!r} is a required property")
        if isinstance(schema.get("minProperties"), int) and len(inst) < schema["minProperties"]:
            fail("minProperties", f"{_show(dict(inst))} does not have enough properties")
        if isinstance(schema.get("maxProperties"), int) and len(inst) > schema["maxProperties"]:
            fail("maxProperties", f"{_show(dict(inst))} has too many properties")
        properties = schema.get("properties")
        seen: set[str] = set()
        if isinstance(properties, Mapping):
            for name, sub_schema in properties.items():
                if name in inst:
                    seen.add(name)
                    errors.extend(self.check(inst[name], sub_schema, (*path, name), base).errors)
        patterns = schema.get("patternProperties")
        if isinstance(patterns, Mapping):
            for pattern, sub_schema in patterns.items():
                try:
                    compiled = re.compile(pattern)
                except re.error:
                    continue
                for name in inst:
                    if compiled.search(name):
                        seen.add(name)
                        errors.extend(
                            self.check(inst[name], sub_schema, (*path, name), base).errors)
        if "additionalProperties" in schema:
            extra = [name for name in inst if name not in seen]
            if schema["additionalProperties"] is False:
                if extra:
                    listed = ", ".join(repr(n) for n in sorted(extra))
                    verb = "was" if len(extra) == 1 else "were"
                    fail("additionalProperties",
                         f"Additional properties are not allowed ({listed} {verb} unexpected)")
            else:
                for name in extra:
                    errors.extend(self.check(inst[name], schema["additionalProperties"],
                                             (*path, name), base).errors)
            seen.update(extra)
        if "propertyNames" in schema:
            for name in inst:  # the name's own violations, at the object's path
                errors.extend(self.check(name, schema["propertyNames"], path, base).errors)
        dependent = schema.get("dependentRequired")
        if isinstance(dependent, Mapping):
            for name, needs in dependent.items():
                if name in inst and isinstance(needs, list):
                    for other in needs:
                        if other not in inst:
                            fail("dependentRequired", f"{other!r} is a dependency of {name!r}")
        dependent_schemas = schema.get("dependentSchemas")
        if isinstance(dependent_schemas, Mapping):
            for name, sub_schema in dependent_schemas.items():
                if name in inst:
                    sub = self.check(inst, sub_schema, path, base)
                    errors.extend(sub.errors)
                    result.merge(sub)
        result.properties |= seen


# --------------------------------------------------------------------------- formats


def _date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


_TIME_RE: Final = re.compile(
    r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))", re.ASCII)


def _time(value: str) -> bool:
    match = _TIME_RE.fullmatch(value)
    if match is None:
        return False
    hour, minute, second = (int(match.group(i)) for i in (1, 2, 3))
    if match.group(6) is not None and (int(match.group(6)) > 23 or int(match.group(7)) > 59):
        return False
    return hour <= 23 and minute <= 59 and second <= 60


def _date_time(value: str) -> bool:
    date, sep, time = value.partition("T") if "T" in value else value.partition("t")
    return bool(sep) and _date(date) and _time(time)


_DURATION_RE: Final = re.compile(
    r"P(?:\d+W|(?=\d|T\d)(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?)",
    re.ASCII)
_HOST_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)


def _hostname(value: str) -> bool:
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in name.split("."))


def _email(value: str) -> bool:
    return "@" in value  # what draft 2020-12 validators check without a mail library


def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _uuid_ok(value: str) -> bool:
    if not re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}", value):
        return False
    _uuid.UUID(value)
    return True


def _regex(value: str) -> bool:
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def _uri_reference(value: str) -> bool:
    if any(c.isspace() or c in '<>"{}|\\^`' for c in value):
        return False
    try:
        urlsplit(value)
    except ValueError:
        return False
    return True


def _uri(value: str) -> bool:
    return _uri_reference(value) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", value) is not None


def _json_pointer(value: str) -> bool:
    return value == "" or (value.startswith("/") and
                           re.fullmatch(r"(/([^~/]|~[01])*)*", value) is not None)


def _relative_json_pointer(value: str) -> bool:
    match = re.fullmatch(r"(0|[1-9][0-9]*)(#|(/.*)?)", value, re.DOTALL)
    return match is not None and (match.group(2) in ("#", "") or _json_pointer(match.group(2)))


_FORMATS: Final[dict[str, Any]] = {
    "date": _date,
    "time": _time,
    "date-time": _date_time,
    "duration": lambda v: _DURATION_RE.fullmatch(v) is not None,
    "email": _email,
    "idn-email": _email,
    "hostname": _hostname,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "uuid": _uuid_ok,
    "regex": _regex,
    "uri": _uri,
    "uri-reference": _uri_reference,
    "json-pointer": _json_pointer,
    "relative-json-pointer": _relative_json_pointer,
}


def violations(instance: Any, schema: Any) -> Iterator[SchemaViolation]:
    """Every violation of ``schema`` by ``instance``, sorted by path.

    Raises :class:`Unresolvable` for a reference outside the schema and :class:`RecursionError`
    for nesting too deep to validate; :func:`validate_config` turns both into problems.
    """
    found = _Validator(schema).run(instance)
    yield from sorted(found, key=lambda v: [str(p) for p in v.path])


def validate_config(instance: Any, schema: Mapping[str, Any] | None) -> list[Problem]:
    """Every schema violation as a :class:`Problem` with its JSON path, secrets redacted.

    A reference the schema cannot resolve inside itself is one problem (``config.schema``);
    it is never fetched, and no message carries anything but the reference itself.
    """
    if schema is None:
        return []
    try:
        found = list(violations(instance, schema))
    except Unresolvable as exc:
        return [
            Problem(
                "$",
                "config.schema",
                f"the plugin's config schema refers to {exc.ref[:200]!r}, which is not inside "
                "the schema; only references inside it are resolved (nothing is fetched). "
                "Update the plugin to a version whose schema keeps its definitions in $defs.",
            )
        ]
    except RecursionError:
        return [Problem("$", "config.depth", "the configuration nests too deeply to validate; "
                                             "flatten it")]
    secrets = secret_paths(schema)
    secret_texts = secret_strings(instance, schema)
    problems = []
    for violation in found:
        path = tuple(str(p) for p in violation.path)
        covers_secret = any(s[: len(path)] == path for s in secrets)
        message = violation.message
        if covers_secret and violation.keyword not in _KEY_ONLY:
            message = (f"value ({REDACTED}) does not satisfy {violation.keyword!r}: "
                       f"{json.dumps(violation.value, default=str)}")
        problems.append(Problem(json_path(list(violation.path)), f"config.{violation.keyword}",
                                scrub(message, secret_texts)))
    return problems


def check_config(
    plugin_id: str,
    schema: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    *,
    advice: str | None = None,
) -> None:
    """Raise :class:`ConfigInvalid` (phase ``config``) naming every problem when ``config``
    does not satisfy the plugin's ``schema`` (the check before a plugin is activated)."""
    problems = validate_config(dict(config), schema)
    if problems:
        error = ConfigInvalid(
            problems, plugin_id=plugin_id, what=f"config of {plugin_id}",
            advice=advice or f"Set the missing or wrong values (`plughost config set "
                             f"{plugin_id} KEY=VALUE`, the settings file, or the host's "
                             "config=) and activate the plugin again.")
        error.phase = "config"
        raise error
