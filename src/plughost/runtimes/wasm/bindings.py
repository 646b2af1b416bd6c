"""What the host gives one wasm plugin instance: its context, a permission check, filesystem
grants, and the WebAssembly transport of the host operations table.

Every ``plughost`` host function a guest calls is a row of :mod:`plughost.runtimes.hostcalls`:
the import ``storage_get`` is ``host.storage.get`` (``host.`` dropped, ``.`` → ``_``), with the
same parameters, the same permission computed by the same rule and the same handler as a process
plugin's request. :class:`HostDispatch` only decodes the guest's request and maps the table's
refusals onto the ABI's error codes.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from plughost.errors import PermissionDenied, PluginUnavailable
from plughost.runtimes.hostcalls import (
    HOST_OPS,
    HostCalls,
    HostHandler,
    HostOpUnserved,
    PermissionCheck,
)
from plughost.runtimes.wasm.abi import import_name

__all__ = ["WASM_METHODS", "FsGrant", "HostDispatch", "LogLimiter", "PermissionChecker",
           "WasmBindings"]

PermissionChecker = PermissionCheck
"""``check(kind, target)`` returns None when allowed and raises PermissionDenied otherwise."""

_LOG = HOST_OPS["host.log"]

WASM_METHODS: dict[str, str] = {import_name(method): method for method in HOST_OPS}
"""Import name in the ``plughost`` module → operation (``storage_get`` → ``host.storage.get``)."""


class FsGrant(NamedTuple):
    """A host directory the guest may open through WASI, at ``guest_path``.

    A plain ``(host_path, guest_path, read_only)`` tuple is accepted wherever a grant is.
    """

    host_path: str | Path
    guest_path: str
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class WasmBindings:
    """What one wasm plugin instance may reach, each part optional.

    :param context: the plugin's :class:`~plughost.core.context.PluginContext` (or an object
        with the same services): its services answer the host functions, its ``config`` is
        what ``config_get`` and ``plughost_activate`` see.
    :param check: the permission check; default: the context's ``permissions`` service, and
        with neither every checked operation is denied.
    :param handlers: handlers replacing the table's for some operations
        (``{"host.emit": fn(plugin_id, params)}``); the table's permission rule still applies.
    :param fs: directories preopened for WASI; nothing else is visible.
    :param logger: where ``log`` and WASI stdout/stderr go (default ``plughost.plugin.<id>``).
    """

    context: Any = None
    check: PermissionChecker | None = None
    handlers: Mapping[str, HostHandler] = field(default_factory=dict)
    fs: tuple[FsGrant, ...] = ()
    logger: logging.Logger | None = None

    def __post_init__(self) -> None:
        fs = tuple(FsGrant(*grant) for grant in self.fs)  # accept plain tuples
        for grant in fs:
            if not str(grant.guest_path).startswith("/"):
                raise ValueError(
                    f"WASI guest path {grant.guest_path!r} must be absolute, e.g. '/data'"
                )
        object.__setattr__(self, "fs", fs)

    def config(self) -> Mapping[str, Any]:
        """The plugin's configuration now."""
        return getattr(self.context, "config", None) or {}


class LogLimiter:
    """Token bucket on log bytes: ``rate`` bytes/s with one second of burst.

    Output past the budget is dropped and counted; when budget returns, one line reports how
    much was dropped. A flooding plugin costs the host a counter increment per call, not I/O.
    """

    MAX_LINE = 8192

    def __init__(self, logger: logging.Logger, rate: int) -> None:
        self.logger = logger
        self.rate = max(1, rate)
        self._tokens = float(self.rate)
        self._stamp = time.monotonic()
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self._pending_report = 0
        self._lock = threading.Lock()

    def emit(self, level: int, text: str) -> None:
        """Log ``text`` at ``level`` if the budget allows, else count it as dropped."""
        if len(text) > self.MAX_LINE:
            text = text[: self.MAX_LINE] + f"... [truncated {len(text) - self.MAX_LINE} chars]"
        size = len(text) + 1
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < size:
                self.dropped_bytes += size
                self.dropped_lines += 1
                self._pending_report += size
                return
            self._tokens -= size
            pending, self._pending_report = self._pending_report, 0
        if pending:
            self.logger.warning(
                "dropped %d bytes of plugin log output over the %d B/s output limit",
                pending,
                self.rate,
            )
        self.logger.log(level, "%s", text)


class HostDispatch:
    """Serves the ``plughost`` host functions of one instance (JSON request → value).

    :param wait: turns an awaitable a service returned into its result (the instance waits on
        the event loop from its worker thread, within the call's deadline).
    """

    def __init__(
        self,
        plugin_id: str,
        bindings: WasmBindings,
        limiter: LogLimiter,
        wait: Callable[[Awaitable[Any]], Any],
    ) -> None:
        self.plugin_id = plugin_id
        self.bindings = bindings
        self.limiter = limiter
        self.wait = wait
        self.calls = HostCalls(
            plugin_id,
            bindings.context,
            check=bindings.check,
            handlers=bindings.handlers,
            log=limiter.emit,
            can_await=False,
        )
        self.denied = 0
        self.host_calls = 0

    def awaits(self, imports: frozenset[str]) -> bool:
        """Whether a module importing ``imports`` may reach an asynchronous service.

        Such a module's calls run on a worker thread, so a host function can wait for the
        service on the event loop; the synchronous form of a service is used otherwise.
        """
        off_loop = any(self.calls.awaits(WASM_METHODS[name]) for name in imports)
        self.calls.can_await = off_loop
        return off_loop

    def log(self, level: int, text: str) -> None:
        # the row's handler, without the request checks: this transport built the request
        _LOG.handler(self.calls, {"level": level, "message": text})

    def call(self, name: str, request: Any) -> Any:
        """Run host function ``name`` for a decoded JSON ``request``; return the ``ok`` value."""
        self.host_calls += 1
        try:
            result = self.calls.dispatch(WASM_METHODS[name], request)
        except PermissionDenied:
            self.denied += 1
            raise
        except HostOpUnserved as exc:
            raise PluginUnavailable(
                f"{exc}; configure the service in the host", plugin_id=self.plugin_id
            ) from None
        if inspect.isawaitable(result):
            result = self.wait(result)
        return result
