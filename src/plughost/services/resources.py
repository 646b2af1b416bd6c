"""The output model: one JSON shape per kind of resource, shared by the HTTP API and the CLI.

Every JSON that plughost prints or serves — ``plughost ... --output json`` and ``/api/v1/...`` —
is built here, so a script sees one shape per resource wherever it reads it:

==============  ===========================================================================
kind            what it is
==============  ===========================================================================
plugin          an installed (or development-folder) plugin: plughost's fields and the
                Arcade-compatible names beside them (pluginId, pluginType, checksum,
                installTime, updateTime, isEnabled)
version         one kept version of a plugin
operation       a background operation (install, update, ...) and its progress
audit_entry     one audit record: an operation or a security decision
token           an API token (never its secret, except once at creation)
config          a plugin's configuration (secrets redacted)
permission      a plugin's declared and granted scopes
error           every refusal: ``{"error": {code, message, hint, plugin_id, details}}``
log_line        one captured plugin log line
removal         a plugin an uninstall removed
alert           one alert (pending, firing, resolved)
==============  ===========================================================================

Rules, stated once:

* **Lists** are pages: ``{"items": [...], "next_cursor": str | null}`` plus ``"total"`` where
  counting is cheap. Ask for the next page with ``?limit=N&cursor=C`` (``--cursor`` in the CLI).
  A cursor is opaque (:func:`encode_cursor` / :func:`decode_cursor`).
* **Times** are ISO 8601 UTC strings, ``2026-12-03T17:20:00Z`` (:func:`iso`), never epoch numbers.
* **Errors** have one shape (:func:`error`), with ``plugin_id`` in one place.

:data:`SCHEMAS` holds the JSON Schema (draft 2020-12) of each kind; ``page_schema(kind)`` the
schema of a page of them. The tests validate every CLI command's ``--output json`` against them,
and the OpenAPI document carries them. Standard library only: the CLI imports this on every run.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from plughost.errors import PlughostError, RequestInvalid

__all__ = [
    "ARCADE_FIELDS",
    "KINDS",
    "SCHEMAS",
    "audit_entry",
    "decode_cursor",
    "encode_cursor",
    "error",
    "iso",
    "page",
    "page_schema",
    "plugin",
    "resource",
    "version",
]

# ------------------------------------------------------------------------------------ times


_CANONICAL_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z")
# How SQLite keeps a time (naive UTC, always with microseconds), as a list page reads it.
_STORED_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")


def iso(value: Any) -> str | None:
    """``value`` (a datetime, epoch seconds, or an ISO string; naive means UTC) as
    ``YYYY-MM-DDTHH:MM:SSZ`` (with milliseconds when it has any), in UTC; ``None`` stays
    ``None``."""
    if type(value) is datetime and value.tzinfo is UTC:  # what the database gives: the hot path
        if value.microsecond:
            return value.isoformat(timespec="milliseconds")[:-6] + "Z"
        return value.isoformat(timespec="seconds")[:-6] + "Z"
    if type(value) is str and len(value) == 26 and _STORED_TIME.fullmatch(value):
        # The text SQLite keeps (Repository.summary_page(stored_times=True)): the same
        # characters the datetime would give, cut out of it; a datetime is made only to refuse
        # an impossible date. Formatting a datetime costs several times more (a list page
        # shows two times per plugin).
        datetime.fromisoformat(value)
        if value.endswith("000000"):
            return f"{value[:10]}T{value[11:19]}Z"
        return f"{value[:10]}T{value[11:23]}Z"
    if value is None or value == "":
        return None
    if type(value) is str and _CANONICAL_TIME.fullmatch(value):
        return value  # already in this shape (a record's to_dict() wrote it): nothing to do
    if isinstance(value, bool):
        raise TypeError("a time cannot be a boolean")
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise TypeError(f"not a time: {value!r}")
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


# ------------------------------------------------------------------------------------ pages


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An opaque cursor for ``position`` (a small JSON object the list's owner defines)."""
    raw = json.dumps(dict(position), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, keys: Iterable[str] = ()) -> dict[str, Any] | None:
    """The position a cursor from :func:`encode_cursor` stands for (``None`` for no cursor).

    :raises RequestInvalid: ``request.invalid`` for anything that is not such a cursor, or
        lacks one of ``keys``.
    """
    if cursor is None or cursor == "":
        return None
    bad = RequestInvalid(
        "the cursor is not one this list returned; pass the next_cursor of the previous page "
        "unchanged (or no cursor for the first page)", details={"cursor": cursor[:100]})
    if len(cursor) > 1000:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise bad
    return data


def page(items: Sequence[Mapping[str, Any]], next_cursor: str | None = None, *,
         total: int | None = None) -> dict[str, Any]:
    """The one list shape: ``{"items", "next_cursor"}`` (+ ``"total"`` when given)."""
    out: dict[str, Any] = {"items": [dict(i) for i in items], "next_cursor": next_cursor}
    if total is not None:
        out["total"] = total
    return out


def id_page(items: Sequence[Mapping[str, Any]], limit: int, *, key: str = "id",
            total: int | None = None) -> dict[str, Any]:
    """A page of items listed newest first by a numeric ``key``: ``next_cursor`` points below
    the last one when the page is full (see :func:`before_id`)."""
    more = len(items) >= limit and bool(items)
    cursor = encode_cursor({"before": items[-1][key]}) if more else None
    return page(items, cursor, total=total)


def before_id(cursor: str | None) -> int | None:
    """The ``before`` id of a cursor made by :func:`id_page` (``None`` without a cursor)."""
    position = decode_cursor(cursor, keys=("before",))
    if position is None:
        return None
    value = position["before"]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise RequestInvalid("the cursor is not one this list returned; pass next_cursor "
                             "unchanged", details={"cursor": cursor})
    return value


def after_key(cursor: str | None) -> str | None:
    """The ``after`` key of a cursor that continues a list ordered by a string key (``None``
    without a cursor); :func:`encode_cursor` ``({"after": key})`` makes one."""
    position = decode_cursor(cursor, keys=("after",))
    if position is None:
        return None
    value = position["after"]
    if not isinstance(value, str):
        raise RequestInvalid("the cursor is not one this list returned; pass next_cursor "
                             "unchanged", details={"cursor": cursor})
    return value


def require_limit(cursor: str | None, limit: int | None) -> None:
    """Refuse a ``cursor`` without ``limit``, on a list that answers every item without
    ``limit`` (``request.invalid``, naming the field)."""
    if cursor is not None and limit is None:
        raise RequestInvalid("`cursor` continues a page of `limit` entries; pass `limit` too "
                             "(or neither, for every entry)", details={"field": "cursor"})


def offset_cursor(offset: int, count: int, total: int) -> str | None:
    """The cursor after ``count`` items read from ``offset`` of ``total`` (``None`` at the
    end), for a list whose order is stable by position."""
    nxt = offset + count
    return encode_cursor({"offset": nxt}) if count and nxt < total else None


def offset_page(items: Sequence[Mapping[str, Any]], offset: int, *,
                total: int) -> dict[str, Any]:
    """A page of a list whose order is stable by position (``offset`` within ``total``)."""
    return page(items, offset_cursor(offset, len(items), total), total=total)


def offset_of(cursor: str | None) -> int:
    """The offset of a cursor made by :func:`offset_page` (0 without a cursor)."""
    position = decode_cursor(cursor, keys=("offset",))
    if position is None:
        return 0
    value = position["offset"]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise RequestInvalid("the cursor is not one this list returned; pass next_cursor "
                             "unchanged", details={"cursor": cursor})
    return value


# ------------------------------------------------------------------------------------ kinds

ARCADE_FIELDS: Final = ("pluginId", "pluginType", "checksum", "installTime", "updateTime",
                        "isEnabled")
"""The Arcade-compatible names a plugin resource carries beside plughost's own."""


def plugin(info: Mapping[str, Any]) -> dict[str, Any]:
    """A plugin resource from a facade record's ``to_dict()`` (``PluginInfo`` /
    ``PluginDetail``), or an already-built resource (idempotent). Extra fields (detail views,
    cluster data) are kept."""
    data = dict(info)
    for key in ("installed_at", "updated_at"):
        data[key] = iso(data.get(key))
    data.setdefault("signed", None)
    data.setdefault("error", None)
    data.setdefault("warnings", [])
    data.setdefault("live", False)
    # The Arcade-compatible names (the facade's to_dict() carries them; the cluster work owns
    # their values): filled in only where a record lacks them.
    data.setdefault("pluginId", data["id"])
    data.setdefault("pluginType", data.get("type", ""))
    data.setdefault("checksum", data.get("sha256", ""))
    data["installTime"] = iso(data.get("installTime", data["installed_at"]))
    data["updateTime"] = iso(data.get("updateTime", data["updated_at"]))
    data.setdefault("isEnabled", 1 if data.get("enabled") else 0)
    if "versions" in data:
        data["versions"] = [version(v) for v in data["versions"]]
    return data


def version(info: Mapping[str, Any]) -> dict[str, Any]:
    """A version resource from ``VersionInfo.to_dict()``."""
    data = dict(info)
    data["installed_at"] = iso(data.get("installed_at"))
    return data


SECURITY_ACTIONS: Final = ("permission.", "security.", "signature.")
"""Audit actions that are security decisions (the rest are operations)."""


def audit_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """An audit entry: ``id, at, actor, action, plugin_id, outcome, details`` (+ ``kind``:
    ``operation`` or ``security``)."""
    data = dict(event)
    data["at"] = iso(data.get("at", data.pop("time", None)))
    data.setdefault("kind", "security" if str(data.get("action", "")).startswith(
        SECURITY_ACTIONS) else "operation")
    data.setdefault("plugin_id", None)
    data.setdefault("outcome", "ok")
    data.setdefault("actor", "")
    data.setdefault("details", {})
    return data


def token(record: Any) -> dict[str, Any]:
    """A token resource from a stored token record (never its secret)."""
    return {"id": record.id, "name": record.name, "role": record.role,
            "created_at": iso(record.created_at), "expires_at": iso(record.expires_at),
            "last_used_at": iso(record.last_used_at), "revoked_at": iso(record.revoked_at)}


def error(exc: PlughostError | Mapping[str, Any]) -> dict[str, Any]:
    """``{"error": {code, message, hint, plugin_id, details}}``: every refusal, CLI and API.
    ``plugin_id`` is in ``error`` (once), never in ``details`` too."""
    raw = exc.to_dict() if isinstance(exc, PlughostError) else dict(exc)
    details = dict(raw.get("details") or {})
    plugin_id = raw.get("plugin_id") or details.pop("plugin_id", None)
    details.pop("plugin_id", None)
    hint = raw.get("hint") or details.pop("hint", None) or getattr(exc, "hint", None)
    if raw.get("phase"):
        details.setdefault("phase", raw["phase"])
    problems = getattr(exc, "problems", None)
    if problems:
        details.setdefault("problems", [p.to_dict() for p in problems])
    return {"error": {"code": raw.get("code", "error"), "message": raw.get("message", ""),
                      "hint": hint, "plugin_id": plugin_id, "details": details}}


def _times(*keys: str) -> Any:
    def convert(data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in keys:
            if key in out:
                out[key] = iso(out[key])
        return out
    return convert


_CONVERTERS: Final[dict[str, Any]] = {
    "plugin": plugin,
    "version": version,
    "audit_entry": audit_entry,
    "operation": _times("created_at", "updated_at", "started_at", "finished_at"),
    "token": _times("created_at", "expires_at", "last_used_at", "revoked_at"),
    "config": dict,
    "removal": dict,
    "package": dict,
    "key": _times("added_at", "revoked_at"),
    "schema_revision": dict,
    "validation": dict,
    "config_change": _times("time"),
    "permission": dict,
    "permission_request": _times("created", "resolved_at"),
    "log_line": _times("time"),
    "alert": _times("since", "at", "fired_at", "resolved_at", "time", "started_at"),
    "alert_rule": dict,
    "health": _times("checked_at", "since"),
    "node": _times("started_at", "heartbeat_at"),
    "market_hit": dict,
    "outdated": dict,
    "publication": dict,
    "reload": dict,
    "new_plugin": dict,
    "marketplace": dict,
    "market_refresh": dict,
    "market_plugin": dict,
    "market_change": dict,
    "update_policy": dict,
    "update_decision": dict,
    "update_outcome": dict,
    "installed_package": dict,
}


def resource(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` in the shape of ``kind`` (times as ISO strings, Arcade names on plugins)."""
    return dict(_CONVERTERS[kind](data))


# ------------------------------------------------------------------------------------ schemas

_STR = {"type": "string"}
_OSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time",
         "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$"}
_OBJ = {"type": "object"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None,
         description: str = "") -> dict[str, Any]:
    props = {**required, **(optional or {})}
    out: dict[str, Any] = {"type": "object", "properties": props, "required": sorted(required),
                           "additionalProperties": True}
    if description:
        out["description"] = description
    return out


_ERROR_BODY = _obj({"code": _STR, "message": _STR, "hint": _OSTR, "plugin_id": _OSTR,
                    "details": _OBJ})

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "plugin": _obj(
        {"id": _STR, "name": _STR, "version": _STR, "description": _STR, "author": _STR,
         "type": _STR, "runtime": _STR,
         "state": {"type": "string", "description": "What the host runs now: active, "
                   "needs-config, failed, disabled, resolved... When no server runs on the "
                   "home (live false), never active: installed, disabled, or why it failed "
                   "at the last start"},
         "live": {"type": "boolean", "description": "true: state is what a running server "
                  "runs now; false: no server runs on the home, nothing runs, and state is "
                  "what the next start begins from (shown as 'enabled (not running)')"},
         "enabled": {"type": "boolean"}, "source": _STR, "source_uri": _STR, "sha256": _STR,
         "installed_at": _TIME, "updated_at": _TIME,
         "signed": {"type": ["boolean", "null"],
                    "description": "false: installed with --allow-unsigned / no signature"},
         "error": {"type": ["object", "null"]},
         "warnings": {"type": "array", "items": _STR},
         "pluginId": _STR, "pluginType": _STR, "checksum": _STR, "installTime": _TIME,
         "updateTime": _TIME,
         "isEnabled": {"type": "integer", "description": "Arcade: 0 disabled, 1 enabled, "
                                                         "2 error"}},
        description="An installed plugin: plughost's fields and the Arcade-compatible names "
                    "beside them."),
    "version": _obj({"plugin_id": _STR, "version": _STR, "current": {"type": "boolean"},
                     "sha256": _STR, "installed_at": _TIME},
                    {"size": {"type": "integer"}, "signed_by": _OSTR}),
    "operation": _obj({"id": _STR, "kind": _STR, "status": _STR},
                      {"plugin_id": _OSTR, "progress": {"type": "number"}, "message": _STR,
                       "error": {"type": ["object", "null"]}, "created_at": _TIME,
                       "updated_at": _TIME, "started_at": _TIME, "finished_at": _TIME}),
    "audit_entry": _obj({"id": {"type": ["integer", "null"]}, "at": _TIME, "actor": _STR,
                         "action": _STR, "plugin_id": _OSTR, "outcome": _STR,
                         "kind": {"enum": ["operation", "security"]}, "details": _OBJ}),
    "token": _obj({"id": {"type": "integer"}, "name": _STR, "role": _STR,
                   "created_at": _TIME, "expires_at": _TIME},
                  {"last_used_at": _TIME, "revoked_at": _TIME}),
    "config": _obj({"plugin_id": _STR, "version": {"type": "integer"}, "config": _OBJ},
                   {"settings": _OBJ, "schema": {"type": ["object", "null"]},
                    "problems": {"type": "array"}}),
    "config_change": _obj({"version": {"type": "integer"}, "time": _TIME, "action": _STR,
                           "actor": _STR, "settings": _OBJ}),
    "permission": _obj({"plugin_id": _STR, "granted": {"type": "array", "items": _STR}},
                       {"declared": {"type": "array", "items": _STR},
                        "requests": {"type": "array"}}),
    "permission_request": _obj({"id": {"type": "integer"}, "plugin_id": _STR, "scope": _STR,
                                "status": _STR}, {"created": _TIME}),
    "validation": _obj({"valid": {"type": "boolean"}, "problems": {"type": "array", "items": _obj(
        {"path": _STR, "code": _STR, "message": _STR})}},
        description="The result of checking a manifest or a package."),
    "package": _obj({"plugin_id": _STR, "version": _STR},
                    {"sha256": _STR, "package_sha256": _STR, "signed": {"type": "boolean"},
                     "trusted": {"type": "boolean"}, "key_id": _OSTR, "path": _STR},
                    description="A plugin package (pack, sign, verify)."),
    "key": _obj({"key_id": _STR}, {"name": _STR, "added_at": _TIME, "revoked_at": _TIME},
                description="A signing key: a new pair (keygen) or one the host trusts."),
    "schema_revision": _obj({"database": _STR, "current": _OSTR, "head": _STR},
                            {"up_to_date": {"type": "boolean"}}),
    "removal": _obj({"plugin_id": _STR, "versions": {"type": "array", "items": _STR}},
                    description="A plugin an uninstall removed, with the versions it had."),
    "error": _obj({"error": _ERROR_BODY}),
    "log_line": _obj({"id": {"type": "integer"}, "time": _TIME, "plugin_id": _OSTR,
                      "level": _STR, "message": _STR}),
    "alert": _obj({"rule": _STR, "plugin_id": _OSTR, "state": _STR},
                  {"severity": _STR, "message": _STR, "since": _TIME, "at": _TIME}),
    "alert_rule": _obj({"name": _STR, "expr": _STR, "op": _STR, "severity": _STR}),
    "health": _obj({"plugin_id": _STR, "status": _STR, "checked_at": _TIME},
                   {"message": _STR, "consecutive_failures": {"type": "integer"}}),
    "node": _obj({"id": _STR, "name": _STR, "status": _STR, "version": _STR,
                  "heartbeat_at": _TIME, "applied_seq": {"type": "integer"},
                  "plugins": {"type": "array", "items": _obj({"id": _STR, "state": _STR})}},
                 {"url": _OSTR, "this_node": {"type": "boolean"}, "started_at": _TIME,
                  "transport": _STR},
                 description="A server sharing the database (plughost nodes)."),
    "market_hit": _obj({"id": _STR, "version": _STR, "source": _STR,
                        "installed_version": _OSTR},
                       {"description": _STR, "type": _STR, "runtime": _STR,
                        "tags": {"type": "array", "items": _STR},
                        "downloads": {"type": "integer"}, "yanked": {"type": "boolean"},
                        "incompatible": _STR},
                       description="A marketplace search result (plughost search); "
                                   "incompatible: why it cannot run here (\"\" if it can)."),
    "outdated": _obj({"id": _STR, "installed_version": _STR, "latest_version": _OSTR,
                      "source": _STR, "advisories": {"type": "array"}},
                     {"force_update": {"type": "boolean"}},
                     description="An installed plugin with a newer version or an advisory."),
    "publication": _obj({"plugin_id": _STR, "version": _STR, "sha256": _STR,
                         "signed_by": {"type": "array", "items": _STR},
                         "targets_version": {"type": "integer"}},
                        {"target": _STR, "size": {"type": "integer"}},
                        description="A package published to a marketplace repository."),
    "reload": _obj({"plugin_id": _STR, "from_version": _OSTR, "to_version": _OSTR,
                    "state": _STR, "ok": {"type": "boolean"}},
                   {"seconds": {"type": "number"}, "error": {"type": ["object", "null"]}},
                   description="A hot reload of a plugin from its files."),
    "new_plugin": _obj({"plugin_id": _STR, "runtime": _STR, "path": _STR,
                        "files": {"type": "array", "items": _STR}},
                       description="A plugin folder made by plughost new."),
    "marketplace": _obj({"name": _STR, "url": _STR, "priority": {"type": "integer"}},
                        {"enabled": {"type": "boolean"}, "plugins": {"type": "integer"}},
                        description="A marketplace this home reads."),
    "market_refresh": _obj({"name": _STR, "offline": {"type": "boolean"},
                            "changed": {"type": "boolean"}},
                           {"targets_version": {"type": ["integer", "null"]},
                            "timestamp_version": {"type": ["integer", "null"]},
                            "expires": _OSTR, "error": {"type": ["object", "null"]}}),
    "market_plugin": _obj({"id": _STR, "name": _STR, "source": _STR,
                           "versions": {"type": "array"}, "advisories": {"type": "array"}},
                          description="What a marketplace says about one plugin."),
    "market_change": _obj({"action": _STR}, description="A change to a marketplace "
                          "repository or to this home's list of marketplaces."),
    "update_policy": _obj({"id": _STR, "policy": _STR,
                           "cooldown_seconds": {"type": "integer"}, "window": _STR}),
    "update_decision": _obj({"id": _STR, "installed_version": _STR, "action": _STR},
                            {"available_version": _OSTR, "policy": _STR, "reason": _OSTR,
                             "error": {"type": ["object", "null"]}}),
    "update_outcome": _obj({"id": _STR, "ok": {"type": "boolean"}},
                           {"from_version": _STR, "to_version": _STR,
                            "error": {"type": ["object", "null"]}}),
    "installed_package": _obj({"plugin_id": _STR, "version": _STR, "state": _STR},
                              {"sha256": _STR}),
}
"""JSON Schema of each resource kind."""

KINDS: Final = tuple(SCHEMAS)


def page_schema(kind: str, *, total: bool = False) -> dict[str, Any]:
    """The JSON Schema of a page of ``kind``."""
    required = ["items", "next_cursor", *(["total"] if total else [])]
    return {"type": "object", "required": required,
            "properties": {"items": {"type": "array", "items": SCHEMAS[kind]},
                           "next_cursor": _OSTR, "total": {"type": "integer"}}}
