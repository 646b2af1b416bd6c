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
    "not served by this host" (after the permission check). Results are made JSON-shaped here
    (an HTTP response becomes ``{"status", "headers", "body"}``, file metadata a mapping).
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
    if http is not None:
        handler = _http_handler(http)
        if handler is not None:
            out["host.http.request"] = handler
    storage = _service(context, "storage")
    if storage is not None:
        for op in ("get", "set", "delete", "keys"):
            if hasattr(storage, op):
                out[f"host.storage.{op}"] = _storage_handler(storage, op)
    files = _service(context, "files")
    if files is not None:
        for method, attr in (
            ("read", "read_text"),
            ("write", "write_text"),
            ("list", "list"),
            ("stat", "stat"),
            ("mkdir", "mkdir"),
            ("delete", "remove"),
        ):
            fn = getattr(files, attr, None)
            if fn is not None:
                out[f"host.files.{method}"] = _files_handler(method, fn)
    return out


def _http_handler(http: Any) -> HostHandler | None:
    request_json = getattr(http, "request_json", None)
    if request_json is not None:
        return lambda pid, p: request_json(p)
    request = getattr(http, "request", None)
    if request is None:
        return None

    async def send(pid: str, p: dict[str, Any]) -> dict[str, Any]:
        body = p.get("body") or None
        response = request(
            str(p.get("method") or "GET"),
            p["url"],
            headers=dict(p.get("headers") or {}),
            content=body,
        )
        if hasattr(response, "__await__"):
            response = await response
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": response.text,
        }

    return send


def _storage_handler(storage: Any, op: str) -> HostHandler:
    def scoped(pid: str, p: dict[str, Any]) -> Any:
        # The namespace was permission-checked (storage:<namespace>); default is the plugin's.
        namespace = p.get("namespace")
        if namespace and namespace != pid and hasattr(storage, "with_namespace"):
            return storage.with_namespace(namespace)
        return storage

    if op == "get":
        return lambda pid, p: scoped(pid, p).get(p["key"], p.get("default"))
    if op == "set":
        return lambda pid, p: scoped(pid, p).set(p["key"], p.get("value"))
    if op == "delete":
        return lambda pid, p: scoped(pid, p).delete(p["key"])
    return lambda pid, p: list(scoped(pid, p).keys())


def _files_handler(method: str, fn: Callable[..., Any]) -> HostHandler:
    if method == "write":
        return lambda pid, p: fn(p["path"], p.get("data", ""))
    if method == "stat":
        return lambda pid, p: _plain(fn(p["path"]))
    return lambda pid, p: fn(p["path"])


def _plain(value: Any) -> Any:
    """A JSON-friendly view of a metadata object (dataclass, namedtuple or plain object)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    return str(value)
