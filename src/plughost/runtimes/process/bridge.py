"""The bridge from ``host.*`` requests to the host: permission checks and service handlers.

The runtime imports no service. The host either injects handlers and a permission policy
(``ProcessRuntime(handlers=..., check_for=...)``) or attaches services to the PluginContext,
from which :func:`handlers_from_context` and :func:`check_from_context` build them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plughost.errors import PermissionDenied, PlughostError

__all__ = [
    "HostHandler",
    "PermissionCheck",
    "check_from_context",
    "deny_all",
    "handlers_from_context",
]

PermissionCheck = Callable[[str, str], None]
"""``check(kind, target)``: return if granted, raise PermissionDenied otherwise."""

HostHandler = Callable[[str, dict[str, Any]], Any]
"""``handler(plugin_id, params) -> result | Awaitable[result]`` for one ``host.*`` method."""


def deny_all(plugin_id: str) -> PermissionCheck:
    """The default permission policy: nothing that needs a grant is allowed."""

    def check(kind: str, target: str) -> None:
        raise PermissionDenied(
            f"{kind}:{target} is not granted (this host has no permission checker configured, "
            "so every host.* request that needs a grant is refused)",
            plugin_id=plugin_id,
            details={"kind": kind, "target": target},
        )

    return check


def _service(context: Any, name: str) -> Any:
    """``context.<name>`` or None (a PluginContext raises PluginUnavailable for unset ones)."""
    has = getattr(context, "has", None)
    if has is not None and not has(name):
        return None
    try:
        return getattr(context, name, None)
    except PlughostError:
        return None


def check_from_context(context: Any, plugin_id: str) -> PermissionCheck:
    """The permission check of a PluginContext's ``permissions`` service, or :func:`deny_all`.

    Accepts a checker that raises ``PermissionDenied`` and one that returns ``False``.
    """
    perms = _service(context, "permissions")
    fn = getattr(perms, "check", None) or (perms if callable(perms) else None)
    if fn is None:
        return deny_all(plugin_id)

    def check(kind: str, target: str) -> None:
        if fn(kind, target) is False:
            raise PermissionDenied(
                f"{kind}:{target} is not granted to plugin {plugin_id!r}; "
                "an operator can grant it with `plughost grant`",
                plugin_id=plugin_id,
                details={"kind": kind, "target": target},
            )

    return check


def handlers_from_context(context: Any) -> dict[str, HostHandler]:
    """``host.*`` handlers built from the services a PluginContext carries.

    Only services that are attached produce handlers; a request for another one is answered
    "not served by this host" (after the permission check).
    """
    out: dict[str, HostHandler] = {}
    bus = _service(context, "bus")
    if bus is not None:
        emit = getattr(bus, "aemit", None) or getattr(bus, "emit", None)
        if emit is not None:
            out["host.emit"] = lambda pid, p: emit(p["topic"], p.get("payload"), source=pid)
    commands = _service(context, "commands")
    if commands is not None and hasattr(commands, "execute"):
        out["host.execute"] = lambda pid, p: commands.execute(
            p["command"], p.get("args") or {}, caller=pid
        )
    http = _service(context, "http")
    request_json = getattr(http, "request_json", None)
    if request_json is not None:
        out["host.http.request"] = lambda pid, p: request_json(p)
    storage = _service(context, "storage")
    if storage is not None:
        for op in ("get", "set", "delete", "keys"):
            fn = getattr(storage, op, None)
            if fn is not None:
                out[f"host.storage.{op}"] = _storage_handler(op, fn)
    files = _service(context, "files")
    if files is not None:
        for method, attr in (("read", "read_text"), ("write", "write_text"), ("list", "list")):
            fn = getattr(files, attr, None)
            if fn is not None:
                out[f"host.files.{method}"] = _files_handler(method, fn)
    return out


def _storage_handler(op: str, fn: Callable[..., Any]) -> HostHandler:
    if op == "get":
        return lambda pid, p: fn(p["key"], p.get("default"))
    if op == "set":
        return lambda pid, p: fn(p["key"], p.get("value"))
    if op == "delete":
        return lambda pid, p: fn(p["key"])
    return lambda pid, p: list(fn())


def _files_handler(method: str, fn: Callable[..., Any]) -> HostHandler:
    if method == "write":
        return lambda pid, p: fn(p["path"], p.get("data", ""))
    return lambda pid, p: fn(p["path"])
