"""The host operations: the one table of what a sandboxed plugin may ask of the host.

Each :class:`HostOp` gives a method (``host.emit``), its parameters, the permission it needs
(computed from its arguments by :func:`required_permission`, the only place that rule is
written) and its handler, which runs against the services of the plugin's
:class:`~plughost.core.context.PluginContext`. A runtime that isolates its plugins (a process,
a WebAssembly store, next a gRPC service or a native library) only adapts its transport: it
decodes a request into ``(method, params)`` and hands it to :meth:`HostCalls.dispatch`, which
validates the parameters, checks the permission *before* any service runs, and answers.

Errors a transport maps to its own wire shapes:

* :class:`HostParamsError` (a ``ValueError``): a parameter is missing or of the wrong type;
* :class:`~plughost.errors.PermissionDenied`: the operation is not granted;
* :class:`HostOpUnserved` (a ``LookupError``): no such operation, or this host runs no service
  for it (raised only after the permission check, so a refused request learns nothing).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from plughost.errors import PermissionDenied, PlughostError

if TYPE_CHECKING:
    from plughost.core.context import (
        BusService,
        CommandService,
        FileService,
        HttpService,
        StorageService,
    )

__all__ = [
    "HOST_OPS",
    "LOG_LEVELS",
    "HostCalls",
    "HostHandler",
    "HostOp",
    "HostOpUnserved",
    "HostParamsError",
    "Param",
    "PermissionCheck",
    "check_from_context",
    "deny_all",
    "required_permission",
]

PermissionCheck = Callable[[str, str], None]
"""``check(kind, target)``: return if granted, raise PermissionDenied otherwise."""

HostHandler = Callable[[str, dict[str, Any]], Any]
"""An injected handler: ``handler(plugin_id, params) -> result | Awaitable[result]``."""

LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
"""``host.log`` levels by name; a number is an index into this tuple (WebAssembly's ``log``)."""


class HostParamsError(ValueError):
    """A ``host.*`` request's parameters are missing or of the wrong type (invalid params)."""


class HostOpUnserved(LookupError):
    """No such ``host.*`` operation, or this host runs no service for it."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a host operation.

    :ivar name: the key in the request object.
    :ivar type: ``"string"`` (non-empty), ``"string?"`` (string or null), ``"object"`` or
        ``"any"``.
    :ivar required: the request must carry it.
    """

    name: str
    type: str
    required: bool = False


_Permission = Callable[[dict[str, Any], str], tuple[str, str]]
_Handler = Callable[["HostCalls", dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class HostOp:
    """One row of the table.

    :ivar method: the operation's name (``host.storage.get``); a transport may spell it its
        own way (the WebAssembly import ``storage_get``).
    :ivar params: the request's parameters; others are ignored.
    :ivar permission: ``(params, plugin_id) -> (kind, target)``; None when the operation
        needs no grant (the plugin's own log and configuration).
    :ivar service: the context service the handler uses (None: log and config, always served).
    :ivar handler: ``(calls, params) -> result`` (or an awaitable when ``awaits``).
    :ivar awaits: the handler needs an event loop (the service is asynchronous), so a
        transport that calls synchronously must run such requests off the loop's thread.
    :ivar result: what the answer is, for the docs.
    """

    method: str
    params: tuple[Param, ...]
    permission: _Permission | None
    service: str | None
    handler: _Handler
    awaits: bool = False
    result: str = "null"


# -- parameter checks ------------------------------------------------------------------------


def _validate(op: HostOp, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise HostParamsError(f"{op.method} takes a JSON object of params, got "
                              f"{type(params).__name__}")
    for p in op.params:
        value = params.get(p.name)
        if value is None:
            if p.required:
                raise HostParamsError(f"{op.method} needs {p.name!r} ({_TYPE_DOC[p.type]})")
            continue
        ok = {
            "string": isinstance(value, str) and bool(value),
            "string?": isinstance(value, str),
            "object": isinstance(value, dict),
            "any": True,
        }[p.type]
        if not ok:
            raise HostParamsError(
                f"{op.method}: {p.name!r} must be {_TYPE_DOC[p.type]}, got {value!r:.80}"
            )
    return params


_TYPE_DOC = {
    "string": "a non-empty string",
    "string?": "a string or null",
    "object": "a JSON object",
    "any": "any JSON value",
}


# -- permissions: the one rule, computed from the arguments ------------------------------------


def _topic(p: dict[str, Any], pid: str) -> tuple[str, str]:
    return ("events:emit", p["topic"])


def _command(p: dict[str, Any], pid: str) -> tuple[str, str]:
    return ("commands:execute", p["command"])


def _net(p: dict[str, Any], pid: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    url = p["url"]
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number, a bad IPv6 literal
        raise HostParamsError(f"host.http.request: {url[:100]!r} is not a valid URL ({exc})"
                              ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostParamsError(
            f"host.http.request needs an absolute http(s) URL, got {url[:100]!r}"
        )
    return ("net", f"{parts.hostname}:{port}")


def _namespace(p: dict[str, Any], pid: str) -> tuple[str, str]:
    return ("storage", p.get("namespace") or pid)


def _fs_read(p: dict[str, Any], pid: str) -> tuple[str, str]:
    return ("fs:read", p["path"])


def _fs_write(p: dict[str, Any], pid: str) -> tuple[str, str]:
    return ("fs:write", p["path"])


# -- handlers ----------------------------------------------------------------------------------


def _log(calls: HostCalls, p: dict[str, Any]) -> None:
    # Lenient on purpose: host.log is a notification, so a refusal could not be answered.
    level = p.get("level", "info")
    if type(level) is int:
        index = min(max(level, 0), len(LOG_LEVELS) - 1)
    else:
        name = str(level).lower()
        index = LOG_LEVELS.index(name) if name in LOG_LEVELS else 2 if name == "warn" else 1
    calls.log(_LOGGING_LEVELS[index], str(p.get("message", "")))


_LOGGING_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def _config_get(calls: HostCalls, p: dict[str, Any]) -> Any:
    config = calls.config()
    key = p.get("key")
    return dict(config) if key is None else config.get(key, p.get("default"))


def _emit(calls: HostCalls, p: dict[str, Any]) -> Any:
    bus: BusService = calls.service("bus")
    if calls.can_await:  # wait for queue space rather than fail when a subscriber lags
        return bus.aemit(p["topic"], p.get("payload"))
    return bus.emit(p["topic"], p.get("payload"))


def _execute(calls: HostCalls, p: dict[str, Any]) -> Any:
    commands: CommandService = calls.service("commands")
    return commands.execute(p["command"], p.get("args") or {})


async def _http(calls: HostCalls, p: dict[str, Any]) -> dict[str, Any]:
    http: HttpService = calls.service("http")
    body = p.get("body")
    response = await http.request(
        str(p.get("method") or "GET"),
        p["url"],
        headers=dict(p.get("headers") or {}),
        content=body.encode() if isinstance(body, str) and body else None,
    )
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": response.text,
    }


def _storage(calls: HostCalls, p: dict[str, Any]) -> StorageService:
    storage: StorageService = calls.service("storage")
    namespace = p.get("namespace")
    if namespace and namespace != storage.namespace:
        return storage.with_namespace(namespace)
    return storage


def _storage_get(calls: HostCalls, p: dict[str, Any]) -> Any:
    return _storage(calls, p).get(p["key"], p.get("default"))


def _storage_set(calls: HostCalls, p: dict[str, Any]) -> None:
    _storage(calls, p).set(p["key"], p.get("value"))


def _storage_delete(calls: HostCalls, p: dict[str, Any]) -> bool:
    return _storage(calls, p).delete(p["key"])


def _storage_keys(calls: HostCalls, p: dict[str, Any]) -> list[str]:
    return list(_storage(calls, p).keys())


def _files(calls: HostCalls) -> FileService:
    files: FileService = calls.service("files")
    return files


def _files_read(calls: HostCalls, p: dict[str, Any]) -> str:
    return _files(calls).read_text(p["path"])


def _files_write(calls: HostCalls, p: dict[str, Any]) -> None:
    _files(calls).write_text(p["path"], p.get("data") or "")


def _files_list(calls: HostCalls, p: dict[str, Any]) -> list[str]:
    return list(_files(calls).list(p["path"]))


def _files_stat(calls: HostCalls, p: dict[str, Any]) -> Any:
    return _plain(_files(calls).stat(p["path"]))


def _files_mkdir(calls: HostCalls, p: dict[str, Any]) -> None:
    _files(calls).mkdir(p["path"])


def _files_delete(calls: HostCalls, p: dict[str, Any]) -> None:
    _files(calls).remove(p["path"])


def _plain(value: Any) -> Any:
    """A JSON-friendly view of a metadata object (dataclass, namedtuple or plain value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    return str(value)


# -- the table ---------------------------------------------------------------------------------

_PATH = (Param("path", "string", required=True),)
_KEY = Param("key", "string", required=True)
_NS = Param("namespace", "string?")


def _op(method: str, params: tuple[Param, ...], permission: _Permission | None,
        service: str | None, handler: _Handler, *, awaits: bool = False,
        result: str = "null") -> tuple[str, HostOp]:
    return method, HostOp(method, params, permission, service, handler, awaits, result)


HOST_OPS: Final[Mapping[str, HostOp]] = dict(
    [
        _op("host.log", (Param("level", "any"), Param("message", "any")), None, None, _log),
        _op("host.config.get", (Param("key", "string?"), Param("default", "any")), None, None,
            _config_get, result="the value (or `default`), or the whole config without `key`"),
        _op("host.emit", (Param("topic", "string", required=True), Param("payload", "any")),
            _topic, "bus", _emit, result="how many subscribers the event reached"),
        _op("host.execute", (Param("command", "string", required=True), Param("args", "object")),
            _command, "commands", _execute, awaits=True, result="the command's result"),
        _op("host.files.read", _PATH, _fs_read, "files", _files_read, result="the file's text"),
        _op("host.files.write", (*_PATH, Param("data", "string?")), _fs_write, "files",
            _files_write),
        _op("host.files.list", _PATH, _fs_read, "files", _files_list, result="entry names"),
        _op("host.files.stat", _PATH, _fs_read, "files", _files_stat,
            result="`{path, size, is_dir, is_file, modified, mode}`"),
        _op("host.files.mkdir", _PATH, _fs_write, "files", _files_mkdir),
        _op("host.files.delete", _PATH, _fs_write, "files", _files_delete),
        _op("host.http.request",
            (Param("url", "string", required=True), Param("method", "string"),
             Param("headers", "object"), Param("body", "string?")),
            _net, "http", _http, awaits=True, result="`{status, headers, body}`"),
        _op("host.storage.get", (_KEY, Param("default", "any"), _NS), _namespace, "storage",
            _storage_get, result="the stored value, or `default`"),
        _op("host.storage.set", (_KEY, Param("value", "any"), _NS), _namespace, "storage",
            _storage_set),
        _op("host.storage.delete", (_KEY, _NS), _namespace, "storage", _storage_delete,
            result="whether the key existed"),
        _op("host.storage.keys", (_NS,), _namespace, "storage", _storage_keys,
            result="the keys"),
    ]
)
"""Every ``host.*`` operation, by method name."""


def required_permission(
    method: str, params: Any, plugin_id: str
) -> tuple[str, str] | None:
    """The ``(kind, target)`` a ``host.*`` request must be granted, or None if it needs none.

    Kinds are the permission scopes' (``events:emit``, ``commands:execute``, ``fs:read``,
    ``fs:write``, ``net``, ``storage``). Raises :class:`HostParamsError` when a parameter the
    target comes from is missing or malformed, :class:`HostOpUnserved` for an unknown method.
    """
    op = HOST_OPS.get(method)
    if op is None:
        raise HostOpUnserved(f"{method!r} is not a host operation; see docs/protocol.md")
    params = _validate(op, params)
    return None if op.permission is None else op.permission(params, plugin_id)


# -- permission policies -------------------------------------------------------------------------


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


def _service_of(context: Any, name: str) -> Any:
    """``context.<name>``, or None when the context has no such service attached."""
    if context is None:
        return None
    has = getattr(context, "has", None)
    if has is not None and not has(name):
        return None
    try:
        return getattr(context, name, None)
    except PlughostError:  # a PluginContext says PluginUnavailable for an unset service
        return None


def check_from_context(context: Any, plugin_id: str) -> PermissionCheck:
    """The check of a context's ``permissions`` service, or :func:`deny_all` without one.

    Accepts a ``check(kind, target)`` that raises ``PermissionDenied`` and one that returns
    ``False``.
    """
    perms = _service_of(context, "permissions")
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


# -- one plugin's binding of the table -----------------------------------------------------------


class HostCalls:
    """The table bound to one plugin: its context's services, its permission check, its log.

    :param plugin_id: the plugin making the requests.
    :param context: its :class:`~plughost.core.context.PluginContext` (or any object with the
        same services); its ``config`` and ``data_dir`` are read on each request.
    :param check: the permission check; default: the context's ``permissions`` service, or
        deny everything.
    :param handlers: handlers that replace the table's for some methods (an embedding host or
        a test serving ``host.emit`` itself); the table's permission rule still applies.
    :param log: ``log(level, text)`` for ``host.log`` (the transport's rate-limited sink);
        default: the context's logger.
    :param can_await: the transport can wait for an awaitable answer (the process runtime);
        False for one that calls synchronously (WebAssembly called inline), which then gets
        the synchronous form of a service where there is one.
    """

    __slots__ = ("_check", "_context", "_handlers", "_log", "can_await", "plugin_id")

    def __init__(
        self,
        plugin_id: str,
        context: Any = None,
        *,
        check: PermissionCheck | None = None,
        handlers: Mapping[str, HostHandler] | None = None,
        log: Callable[[int, str], None] | None = None,
        can_await: bool = True,
    ) -> None:
        self.plugin_id = plugin_id
        self._context = context
        self._check = check or check_from_context(context, plugin_id)
        self._handlers = dict(handlers or {})
        unknown = set(self._handlers) - set(HOST_OPS)
        if unknown:
            raise ValueError(f"no host operation named {sorted(unknown)}; known: "
                             f"{sorted(HOST_OPS)}")
        self._log = log
        self.can_await = can_await

    @property
    def check(self) -> PermissionCheck:
        """The permission check every request that needs a grant passes."""
        return self._check

    # -- what handlers use

    def service(self, name: str) -> Any:
        """The context's service ``name`` (the dispatcher made sure it is there)."""
        return _service_of(self._context, name)

    def config(self) -> Mapping[str, Any]:
        """The plugin's current configuration."""
        return getattr(self._context, "config", None) or {}

    def log(self, level: int, text: str) -> None:
        """Write one line of the plugin's log."""
        if self._log is not None:
            self._log(level, text)
            return
        logger = getattr(self._context, "logger", None) or logging.getLogger(
            f"plughost.plugin.{self.plugin_id}"
        )
        logger.log(level, "%s", text)

    # -- what transports use

    def serves(self, method: str) -> bool:
        """Whether this host answers ``method`` (its service is attached, or injected)."""
        op = HOST_OPS.get(method)
        if op is None:
            return False
        return method in self._handlers or op.service is None or (
            _service_of(self._context, op.service) is not None
        )

    def awaits(self, method: str) -> bool:
        """Whether answering ``method`` may need the event loop (see :attr:`HostOp.awaits`)."""
        handler = self._handlers.get(method)
        if handler is not None:
            return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
                getattr(handler, "__call__", None)  # noqa: B004
            )
        op = HOST_OPS.get(method)
        return op is not None and op.awaits and self.serves(method)

    def dispatch(self, method: str, params: Any) -> Any:
        """Answer one request: validate, check the permission, run the handler.

        Returns the result, or an awaitable of it. Raises :class:`HostParamsError`,
        ``PermissionDenied`` or :class:`HostOpUnserved` (see the module docstring).
        """
        op = HOST_OPS.get(method)
        if op is None:
            raise HostOpUnserved(
                f"{method!r} is not a host operation; known: {', '.join(sorted(HOST_OPS))}"
            )
        params = _validate(op, params)
        if op.method.startswith("host.files."):
            params = {**params, "path": self._real_path(params["path"])}
        if op.permission is not None:
            self._check(*op.permission(params, self.plugin_id))  # before any service runs
        injected = self._handlers.get(method)
        if injected is not None:
            return injected(self.plugin_id, params)
        if op.service is not None and _service_of(self._context, op.service) is None:
            raise HostOpUnserved(
                f"{method!r} is not served by this host: no {op.service!r} service is "
                "configured for plugins"
            )
        return op.handler(self, params)

    def _real_path(self, path: str) -> str:
        """Resolve a file path once, here: relative to the data directory, symlinks followed.

        The permission check and the files service then see the same path.
        """
        if "\x00" in path:
            raise HostParamsError("path contains a NUL byte")
        if not os.path.isabs(path):
            try:
                data_dir = getattr(self._context, "data_dir", None)
            except PlughostError:
                data_dir = None
            if data_dir is None:
                raise HostParamsError(
                    f"relative path {path!r} needs the plugin's data directory, and this host "
                    "has none (give PluginHost a home); use an absolute path"
                )
            path = os.path.join(str(data_dir), path)
        return os.path.realpath(path)
