"""One native plugin library, loaded with :mod:`ctypes`, seen as a plugin object.

:class:`NativePlugin` wraps a library that implements ``include/plughost.h`` in an object with
the callbacks of :class:`plughost.sdk.Plugin` (``activate``, ``deactivate``, ``health``,
``on_config_change``, ``export_state``...) and one exported method per target the library
declares. The same object serves both isolations: the ``inprocess`` one hands it to the
in-process Python machinery, the ``process`` one runs it in the Python child runner
(:mod:`plughost.sdk.child`, through :func:`from_environment`) behind the process protocol — so
supervision, limits and confinement are the process runtime's.

Host operations the library asks for (``host->call``) go to ``host_call(method, params)``, given
at activation: in the child, a ``host.*`` request on the process protocol; in process, the
shared host-operations table (:mod:`plughost.runtimes.hostcalls`). Either way the permission
rule is the table's.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from plughost.core.contract import Health
from plughost.core.wire import decode_json
from plughost.errors import (
    PermissionDenied,
    PluginError,
    PluginLoadError,
    PluginUnavailable,
)
from plughost.runtimes.stepchannels import serve_by_steps

__all__ = [
    "ABI_VERSION",
    "ENV_LIBRARY",
    "NativePlugin",
    "from_environment",
]

ABI_VERSION: Final = 1
"""``PLUGHOST_ABI_VERSION`` of ``include/plughost.h`` this host speaks."""

ENV_LIBRARY: Final = "PLUGHOST_NATIVE_LIBRARY"
"""The child runner's environment variable naming the library to load (an absolute path)."""

OK, ERROR, NO_TARGET = 0, 1, 2

HostCall = Callable[[str, dict[str, Any]], Any]
"""``host_call(method, params) -> result``; raises a PlughostError (or HostError) on refusal."""

_CALL = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_LOG = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t)


class _HostTable(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("data", ctypes.c_void_p),
        ("call", _CALL),
        ("free_result", _FREE),
        ("log", _LOG),
    ]


_CODE: Final = re.compile(r"[a-z][a-z_]*(\.[a-z_]+)+")
_EXPORT_KINDS: Final = frozenset({"command", "hook", "event", "channel"})
_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


def _error_of(raw: bytes | None, what: str) -> PluginError | PermissionDenied:
    """The error a library reported (a JSON object or a plain message)."""
    text = raw.decode("utf-8", "replace") if raw else ""
    message, code = text or f"{what} failed", "plugin.error"
    try:
        data = json.loads(text) if text.startswith("{") else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or message)
        raw_code = data.get("code")
        if isinstance(raw_code, str) and _CODE.fullmatch(raw_code):
            code = raw_code  # the host's own refusal handed back (permission.denied, ...)
    if code == "permission.denied":  # the host's refusal, handed back by the library
        return PermissionDenied(f"{what}: {message}")
    return PluginError(f"{what}: {message}", code=code)


def _result_of(raw: bytes | None, target: str, plugin_id: str | None) -> Any:
    """What ``plughost_call`` returned for ``target``, decoded; ``protocol.json`` if it is not
    JSON."""
    return decode_json(raw or b"", f"the native library's result for {target!r}",
                       "plughost_call returns a JSON text (include/plughost.h)",
                       plugin_id=plugin_id)


def open_library(path: Path) -> ctypes.CDLL:
    """Load ``path`` and check its ABI version before calling anything else in it."""
    try:
        lib = ctypes.CDLL(str(path), mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2))
    except OSError as exc:
        raise PluginLoadError(f"cannot load native library {path.name!r}: {exc}") from None
    missing = [name for name in ("plughost_abi_version", "plughost_init", "plughost_call",
                                 "plughost_free", "plughost_shutdown")
               if not hasattr(lib, name)]
    if missing:
        raise PluginLoadError(
            f"native library {path.name!r} does not export {', '.join(missing)}; a native plugin "
            "implements the functions of include/plughost.h (see docs/native.md)")
    lib.plughost_abi_version.restype = ctypes.c_uint32
    lib.plughost_abi_version.argtypes = []
    version = int(lib.plughost_abi_version())
    if version != ABI_VERSION:
        raise PluginLoadError(
            f"native library {path.name!r} speaks plughost ABI version {version}; this host speaks "
            f"version {ABI_VERSION}. Rebuild the library against this host's include/plughost.h.",
            code="runtime.abi")
    out_p = ctypes.POINTER(ctypes.c_void_p)
    len_p = ctypes.POINTER(ctypes.c_size_t)
    lib.plughost_init.restype = ctypes.c_int32
    lib.plughost_init.argtypes = [ctypes.POINTER(_HostTable), out_p, len_p]
    lib.plughost_call.restype = ctypes.c_int32
    lib.plughost_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, out_p, len_p]
    lib.plughost_free.restype = None
    lib.plughost_free.argtypes = [ctypes.c_void_p]
    lib.plughost_shutdown.restype = None
    lib.plughost_shutdown.argtypes = []
    return lib


class NativePlugin:
    """A loaded native library as a plugin object (see the module docstring).

    :param path: the library file (already resolved inside the plugin folder).
    :param host_call: how host operations are answered until :meth:`activate` gives a context
        (default: refused, "not active yet").
    """

    def __init__(self, path: Path, host_call: HostCall | None = None, *,
                 plugin_id: str | None = None) -> None:
        self.path = path
        self.plugin_id = plugin_id  # named in the errors its answers cause
        self.lib = open_library(path)
        self._host_call: HostCall | None = host_call
        self.log: Callable[[int, str], None] | None = None
        self._held: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self._lock = threading.Lock()  # the library is called from one thread at a time
        self._closed = False
        self.ctx: Any = None
        self._targets: set[str] = set()
        # The callbacks must outlive every call: keep them on the object.
        self._table = _HostTable(ABI_VERSION, None, _CALL(self._on_call), _FREE(self._on_free),
                                 _LOG(self._on_log))
        rc, raw = self._raw_call(None, b"")
        if rc != OK:
            raise PluginLoadError(str(_error_of(raw, "plughost_init").message))
        self.exports = self._declare(raw)

    # -- what the library declares -------------------------------------------------------------
    def _declare(self, raw: bytes | None) -> list[dict[str, Any]]:
        from plughost.sdk.decorators import EXPORTS_ATTR, ExportMark

        try:
            data = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise PluginLoadError(f"plughost_init returned invalid JSON: {exc}") from None
        items = data.get("exports") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise PluginLoadError('plughost_init must return {"exports": [...]} (a JSON object)')
        exports: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            ok = isinstance(item, dict) and item.get("kind") in _EXPORT_KINDS and all(
                isinstance(item.get(k), str) and item.get(k) for k in ("name", "target"))
            target = item.get("target") if isinstance(item, dict) else None
            reserved = hasattr(type(self), target) or (
                target in vars(self) and target not in self._targets) if isinstance(
                target, str) else True
            if not ok or not isinstance(target, str) or not target.isidentifier() or (
                    target.startswith("_") or reserved):
                raise PluginLoadError(
                    f"plughost_init export #{i} is not {{kind: command|hook|event|channel, name, "
                    "target}} "
                    f"with an identifier target that is not a reserved name: {item!r}")
            options = item.get("options") or {}
            if not isinstance(options, dict):
                raise PluginLoadError(f"plughost_init export #{i}: options must be an object")
            if item["kind"] == "channel":
                handler = self._channel_handler(target)
            else:
                handler = getattr(self, target, None) or self._handler(target)
            marks = (*getattr(handler, EXPORTS_ATTR, ()),
                     ExportMark(item["kind"], item["name"], dict(options)))
            setattr(handler, EXPORTS_ATTR, marks)
            setattr(self, target, handler)
            self._targets.add(target)
            exports.append(item)
        return exports

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Any public name reaches the library, as any public method of a Python plugin does;
        # one the library does not know answers plugin.no_target when called.
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(name)
        return self._handler(name)

    def _handler(self, target: str) -> Callable[..., Any]:
        def handler(*args: Any, **kwargs: Any) -> Any:
            if args:  # an event: one positional argument
                return self.invoke(target, _event_dict(args[0]))
            return self.invoke(target, kwargs)

        handler.__name__ = target
        return handler

    def _channel_handler(self, target: str) -> Callable[..., Any]:
        """The channel handler for a ``channel`` export: one ``plughost_call(target, ...)`` per
        step of the conversation (:mod:`plughost.runtimes.stepchannels`, docs/native.md)."""

        async def handler(channel: Any) -> None:
            await serve_by_steps(
                channel, lambda args: self.run_blocking(self.invoke, target, args), target)

        handler.__name__ = target
        return handler

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one library call from a channel handler: in a worker thread (the library may
        block, and may ask for host operations that wait); the trusted in-process instance
        replaces this when its calls run on the event loop."""
        import asyncio

        return await asyncio.to_thread(fn, *args)

    # -- calling the library ---------------------------------------------------------------------
    def _raw_call(self, target: bytes | None, args: bytes) -> tuple[int, bytes | None]:
        out = ctypes.c_void_p()
        size = ctypes.c_size_t()
        with self._lock:
            if self._closed:
                raise PluginUnavailable("the native library was shut down")
            if target is None:
                rc = self.lib.plughost_init(ctypes.byref(self._table), ctypes.byref(out),
                                            ctypes.byref(size))
            else:
                rc = self.lib.plughost_call(target, args, len(args), ctypes.byref(out),
                                            ctypes.byref(size))
            if not out.value:
                return int(rc), None
            try:
                return int(rc), ctypes.string_at(out.value, size.value)
            finally:
                self.lib.plughost_free(out)

    def invoke(self, target: str, args: Mapping[str, Any]) -> Any:
        """Call ``target`` with ``args``; its JSON result, decoded."""
        rc, raw = self._raw_call(target.encode(), json.dumps(args, separators=(",", ":")).encode())
        if rc == OK:
            return _result_of(raw, target, self.plugin_id)
        if rc == NO_TARGET:
            raise PluginUnavailable(
                f"the native library has no target {target!r}; exports: "
                f"{sorted(e['target'] for e in self.exports)}", code="plugin.no_target")
        raise _error_of(raw, target)

    def _optional(self, target: str, args: Mapping[str, Any]) -> Any:
        """A lifecycle target the library need not implement (``None`` when it has none)."""
        rc, raw = self._raw_call(target.encode(), json.dumps(args).encode())
        if rc == OK:
            return _result_of(raw, target, self.plugin_id)
        if rc == NO_TARGET:
            return None
        raise _error_of(raw, target)

    # -- the host callbacks ------------------------------------------------------------------------
    def _answer(self, rc: int, data: bytes, result: Any, size: Any) -> int:
        buf = ctypes.create_string_buffer(data, len(data) + 1)
        address = ctypes.addressof(buf)
        self._held[address] = buf
        result[0] = address
        size[0] = len(data)
        return rc

    def _on_call(self, _data: Any, method: bytes | None, params: int | None, length: int,
                 result: Any, size: Any) -> int:
        try:
            name = (method or b"").decode()
            raw = ctypes.string_at(params, length) if params and length else b"{}"
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("params must be a JSON object")
            if self._host_call is None:
                raise PluginUnavailable(f"{name} is not available before activation")
            answer = self._host_call(name, value)
            return self._answer(OK, json.dumps(answer).encode(), result, size)
        except BaseException as exc:  # nothing may escape into C
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                code = "host.params" if isinstance(exc, ValueError) else "host.error"
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            body = json.dumps({"code": code, "message": str(message)}).encode()
            try:
                return self._answer(ERROR, body, result, size)
            except BaseException:
                return ERROR

    def _on_free(self, _data: Any, address: int | None) -> None:
        if address:
            self._held.pop(address, None)

    def _on_log(self, _data: Any, level: int, message: int | None, length: int) -> None:
        try:
            text = ctypes.string_at(message, length).decode("utf-8", "replace") if message else ""
            if self._host_call is not None:
                level = min(max(int(level), 0), len(_LEVELS) - 1)
                self._host_call("host.log", {"level": _LEVELS[level], "message": text})
        except BaseException:
            pass

    # -- the Plugin callbacks ----------------------------------------------------------------------
    def bind(self, host_call: HostCall) -> None:
        """Answer host operations with ``host_call`` from now on."""
        self._host_call = host_call

    def activate(self, ctx: Any) -> None:
        self.ctx = ctx
        conn = getattr(ctx, "_conn", None)  # the child runner's context: host.* on the wire
        if conn is not None and self._host_call is None:
            self._host_call = conn.request
        try:
            data_dir = getattr(ctx, "data_dir", None)
        except Exception:  # a host without a home gives no data directory
            data_dir = None
        self._optional("$activate", {
            "plugin_id": getattr(ctx, "plugin_id", None),
            "config": dict(getattr(ctx, "config", None) or {}),
            "data_dir": str(data_dir) if data_dir is not None else None,
        })

    def deactivate(self) -> None:
        self._optional("$deactivate", {})

    def health(self) -> Health:
        value = self._optional("$health", {})
        if value is None or value is True:
            return Health(True)
        if isinstance(value, dict):
            return Health(bool(value.get("ok", True)), str(value.get("detail", "")),
                          dict(value.get("data") or {}))
        return Health(bool(value))

    def on_config_change(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self._optional("$config_change", {"old": dict(old), "new": dict(new)})

    def export_state(self) -> Any:
        return self._optional("$export_state", {})

    def import_state(self, state: Any, from_version: str) -> None:
        self._optional("$import_state", {"state": state, "from_version": from_version})

    def on_enable(self) -> None:
        self._optional("$enable", {})

    def on_disable(self) -> None:
        self._optional("$disable", {})

    def shutdown(self) -> None:
        """``plughost_shutdown`` once; later calls raise PluginUnavailable."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.lib.plughost_shutdown()


def _event_dict(event: Any) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    return {name: getattr(event, name, None)
            for name in ("topic", "payload", "source", "id", "timestamp")}


def from_environment() -> NativePlugin:
    """The child runner's factory: the library named by ``$PLUGHOST_NATIVE_LIBRARY``."""
    path = os.environ.get(ENV_LIBRARY)
    if not path:
        raise PluginLoadError(f"${ENV_LIBRARY} is not set; this runner is started by the host")
    return NativePlugin(Path(path), plugin_id=os.environ.get("PLUGHOST_PLUGIN_ID") or None)
