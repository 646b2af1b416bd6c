"""What ``plugin.ctx`` is inside the Python runner: ids, config, and host-service proxies.

Each proxy method sends one ``host.*`` request (docs/protocol.md §7): a plain call in synchronous
handlers, an awaitable inside ``async def`` handlers.
"""

from __future__ import annotations

import os
from contextvars import ContextVar

from plughost.core.wire import ENV_PLUGIN_ID, M
from plughost.sdk._connection import ChildConnection, in_helper_loop

TYPE_CHECKING = False  # not typing's: importing typing would cost every plugin start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChildContext", "trace_context"]

#: The W3C trace context (``traceparent``/``tracestate``) of the message being served, as the
#: host sent it (docs/protocol.md, "Trace context"); ``None`` when the host is not tracing.
trace_context: ContextVar[dict[str, str] | None] = ContextVar("plughost_child_trace",
                                                              default=None)


class _Service:
    """Base of the host-service proxies: sync in plain code, awaitable inside a coroutine."""

    __slots__ = ("_conn",)

    def __init__(self, conn: ChildConnection) -> None:
        self._conn = conn

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        if in_helper_loop():
            return self._conn.arequest(method, params)  # inside an async handler: awaitable
        return self._conn.request(method, params)


class _Bus(_Service):
    def emit(self, topic: str, payload: Any = None) -> Any:
        """Publish an event (needs ``events:emit:<topic>``)."""
        return self._call(M.EMIT, {"topic": topic, "payload": payload})


class _Commands(_Service):
    def execute(self, command: str, **kwargs: Any) -> Any:
        """Run a command provided by the host or another plugin."""
        return self._call(M.EXECUTE, {"command": command, "args": kwargs})


class _Files(_Service):
    def read_text(self, path: str) -> Any:
        """Read a file the plugin was granted ``fs:read`` on."""
        return self._call("host.files.read", {"path": path})

    def write_text(self, path: str, data: str) -> Any:
        """Write a file the plugin was granted ``fs:write`` on."""
        return self._call("host.files.write", {"path": path, "data": data})

    def list(self, path: str) -> Any:
        """List a directory."""
        return self._call("host.files.list", {"path": path})

    def stat(self, path: str) -> Any:
        """File metadata (a mapping)."""
        return self._call("host.files.stat", {"path": path})

    def mkdir(self, path: str) -> Any:
        """Create a directory (and its parents)."""
        return self._call("host.files.mkdir", {"path": path})

    def remove(self, path: str) -> Any:
        """Delete a file."""
        return self._call("host.files.delete", {"path": path})


class _Http(_Service):
    def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, body: str = ""
    ) -> Any:
        """An HTTP request made by the host on the plugin's behalf (needs ``net:<host>``)."""
        params = {"method": method, "url": url, "headers": headers or {}, "body": body}
        return self._call("host.http.request", params)

    def get(self, url: str, **kw: Any) -> Any:
        """``request("GET", url)``."""
        return self.request("GET", url, **kw)


class _Storage(_Service):
    def get(self, key: str, default: Any = None) -> Any:
        """Read a value from the plugin's namespace."""
        return self._call("host.storage.get", {"key": key, "default": default})

    def set(self, key: str, value: Any) -> Any:
        """Store a JSON value."""
        return self._call("host.storage.set", {"key": key, "value": value})

    def delete(self, key: str) -> Any:
        """Remove a key."""
        return self._call("host.storage.delete", {"key": key})

    def keys(self) -> Any:
        """Every key in the plugin's namespace."""
        return self._call("host.storage.keys", {})


class ChildContext:
    """What ``plugin.ctx`` is out of process: ids, config, and host-service proxies."""

    def __init__(self, conn: ChildConnection, params: dict[str, Any]) -> None:
        self.plugin_id: str = params.get("plugin_id") or os.environ.get(ENV_PLUGIN_ID, "")
        self.config: dict[str, Any] = dict(params.get("config") or {})
        self.manifest: dict[str, Any] = dict(params.get("manifest") or {})
        self._data_dir = params.get("data_dir")
        self.bus = _Bus(conn)
        self.commands = _Commands(conn)
        self.files = _Files(conn)
        self.http = _Http(conn)
        self.storage = _Storage(conn)
        self._conn = conn
        self._logger: Any = None

    @property
    def trace_parent(self) -> str | None:
        """The W3C ``traceparent`` of the call, event or channel being served (the host span
        it joins), or ``None`` when the host is not tracing. A plugin in another language
        reads the same field off the message (docs/protocol.md)."""
        fields = trace_context.get()
        return fields.get("traceparent") if fields else None

    @property
    def trace_state(self) -> str | None:
        """The W3C ``tracestate`` sent with :attr:`trace_parent`, or ``None``."""
        fields = trace_context.get()
        return fields.get("tracestate") if fields else None

    @property
    def data_dir(self) -> Any:
        """The plugin's private data directory (a ``pathlib.Path``), or ``None``."""
        if self._data_dir is None:
            return None
        from pathlib import Path

        return Path(self._data_dir)

    @property
    def logger(self) -> Any:
        """A ``logging.Logger`` whose records travel to the host as ``host.log``."""
        if self._logger is None:
            import logging

            conn = self._conn

            class _HostHandler(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    conn.notify(
                        M.LOG,
                        {"level": record.levelname.lower(), "message": self.format(record)},
                    )

            logger = logging.getLogger(f"plughost.plugin.{self.plugin_id}")
            logger.addHandler(_HostHandler())
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
            self._logger = logger
        return self._logger

    def call_host(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send any ``host.*`` request (escape hatch for methods without a proxy)."""
        return _Service(self._conn)._call(method, params or {})


# --- the runner ----------------------------------------------------------------------------------
