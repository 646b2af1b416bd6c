"""What the host gives one wasm plugin instance: services as callables, a permission checker,
filesystem grants. Plain inputs, so the runtime imports no host service.

Every host function a guest calls goes through :class:`HostDispatch`, which checks the
permission with ``bindings.check(kind, target)`` *before* touching the service. Kinds follow the
permission scopes: ``events:emit`` (target: topic), ``commands:execute`` (command id), ``net``
(``host:port`` of the URL), ``storage`` (namespace). ``check=None`` denies everything checked:
deny by default.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from plughost.errors import PermissionDenied, PluginUnavailable

__all__ = ["FsGrant", "HostDispatch", "LogLimiter", "PermissionChecker", "WasmBindings"]

PermissionChecker = Callable[[str, str], None]
"""``check(kind, target)`` returns None when allowed and raises PermissionDenied otherwise."""


class FsGrant(NamedTuple):
    """A host directory the guest may open through WASI, at ``guest_path``.

    A plain ``(host_path, guest_path, read_only)`` tuple is accepted wherever a grant is.
    """

    host_path: str | Path
    guest_path: str
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class WasmBindings:
    """The host services one wasm plugin instance may reach, each optional.

    :param config: the plugin's configuration (``config_get``).
    :param check: the permission checker; None denies every checked operation.
    :param emit: ``emit(topic, payload)`` publishes an event.
    :param execute: ``execute(command, args) -> result`` runs a command.
    :param http_request: ``http_request({"method", "url", "headers", "body"}) -> {"status",
        "headers", "body"}``; the only network the guest has.
    :param storage_get: ``storage_get(namespace, key) -> value | None``.
    :param storage_set: ``storage_set(namespace, key, value)``.
    :param fs: directories preopened for WASI; nothing else is visible.
    :param logger: where ``log`` and WASI stdout/stderr go (default ``plughost.plugin.<id>``).
    """

    config: Mapping[str, Any] = field(default_factory=dict)
    check: PermissionChecker | None = None
    emit: Callable[[str, Any], Any] | None = None
    execute: Callable[[str, Mapping[str, Any]], Any] | None = None
    http_request: Callable[[Mapping[str, Any]], Any] | None = None
    storage_get: Callable[[str, str], Any] | None = None
    storage_set: Callable[[str, str, Any], Any] | None = None
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

    def async_services(self) -> frozenset[str]:
        """Names of the services given as coroutine functions (``async def``).

        A module importing one of them is called on a worker thread, so the host function can
        wait for the coroutine on the event loop (see ``WasmInstance.call``).
        """
        out = set()
        for name in SERVICE_NAMES:
            fn = getattr(self, name)
            if fn is not None and (
                inspect.iscoroutinefunction(fn)
                or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
            ):
                out.add(name)
        return frozenset(out)


SERVICE_NAMES = ("emit", "execute", "http_request", "storage_get", "storage_set")


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


_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


class HostDispatch:
    """Serves the ``plughost`` host functions for one instance (JSON request -> value)."""

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
        self.wait = wait  # turns an awaitable a service returned into its result
        self.denied = 0
        self.host_calls = 0

    def log(self, level: int, text: str) -> None:
        self.limiter.emit(_LEVELS[min(max(level, 0), len(_LEVELS) - 1)], text)

    def _check(self, kind: str, target: str) -> None:
        check = self.bindings.check
        try:
            if check is None:
                raise PermissionDenied(
                    f"{kind} {target!r} is not granted (no permissions were granted to this "
                    "plugin); grant the scope to the plugin to allow it",
                    plugin_id=self.plugin_id,
                    details={"kind": kind, "target": target},
                )
            check(kind, target)
        except PermissionDenied:
            self.denied += 1
            raise

    def _service(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.bindings, name)
        if fn is None:
            raise PluginUnavailable(
                f"the host offers no {name} service to this plugin; configure one in the host",
                plugin_id=self.plugin_id,
            )
        return fn  # type: ignore[no-any-return]

    def call(self, op: str, request: Any) -> Any:
        """Run host function ``op`` for a decoded JSON ``request``; return the ``ok`` value."""
        self.host_calls += 1
        if not isinstance(request, dict):
            raise ValueError(f"{op} expects a JSON object, got {type(request).__name__}")
        handler = getattr(self, f"_op_{op}")
        result = handler(request)
        if inspect.isawaitable(result):
            result = self.wait(result)
        return result

    def _op_emit(self, req: dict[str, Any]) -> Any:
        topic = _string(req, "topic")
        self._check("events:emit", topic)
        return self._service("emit")(topic, req.get("payload"))

    def _op_execute(self, req: dict[str, Any]) -> Any:
        command = _string(req, "command")
        self._check("commands:execute", command)
        args = req.get("args") or {}
        if not isinstance(args, dict):
            raise ValueError("execute: 'args' must be a JSON object")
        return self._service("execute")(command, args)

    def _op_config_get(self, req: dict[str, Any]) -> Any:
        key = req.get("key")
        config = self.bindings.config
        if key is None:
            return dict(config)
        if not isinstance(key, str):
            raise ValueError("config_get: 'key' must be a string or null")
        return config.get(key)

    def _op_http_request(self, req: dict[str, Any]) -> Any:
        url = _string(req, "url")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"http_request: {url!r} is not an absolute http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._check("net", f"{parts.hostname}:{port}")
        return self._service("http_request")(req)

    def _op_storage_get(self, req: dict[str, Any]) -> Any:
        namespace = req.get("namespace") or self.plugin_id
        key = _string(req, "key")
        self._check("storage", str(namespace))
        return self._service("storage_get")(str(namespace), key)

    def _op_storage_set(self, req: dict[str, Any]) -> Any:
        namespace = req.get("namespace") or self.plugin_id
        key = _string(req, "key")
        self._check("storage", str(namespace))
        return self._service("storage_set")(str(namespace), key, req.get("value"))


def _string(req: Mapping[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing or empty string field {key!r}")
    return value
