"""Run an ordinary :class:`plughost.sdk.Plugin` in a subprocess, speaking docs/protocol.md.

The host launches ``python -m plughost.sdk.child module:Attribute`` with the plugin folder as the
working directory. The runner is deliberately lean (no asyncio, no logging, no threads pool
unless the plugin itself needs them) so a Python process plugin is ready in a few milliseconds:

* the **main thread** reads stdin, decodes frames and runs each request's handler inline,
  batching the responses of one read into one write;
* a handler that calls the host (``ctx.bus.emit`` ...) *pumps* stdin while it waits, so requests
  from the host keep being served (re-entrantly) and there is no deadlock;
* an ``async def`` handler starts, on first use only, one asyncio loop in a helper thread; its
  host calls are then awaitable and many run concurrently;
* a **watchdog thread** blocks in ``poll()`` on stdin for hang-up and exits the process the
  moment the host's end of the pipe closes — even while a handler is stuck in a loop.

Exit codes: 0 normal, 2 not launched by a host, 3 the entry could not be loaded, 4 protocol
error, 5 out of memory (``MemoryError`` under the memory limit).
"""

from __future__ import annotations

import os
import sys
import threading
from time import perf_counter

from plughost.runtimes.process.framing import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from plughost.runtimes.process.protocol import (
    ASSIGN,
    CANCEL,
    ENV_MAX_FRAME,
    ENV_PLUGIN_ID,
    ENV_SPARE,
    ENV_TOKEN,
    EXIT,
    HELLO,
    SPARE_READY,
    WireCode,
    decode_message,
    dumps,
    enable_fast_json,
    error_to_wire,
    hello_params,
)

TYPE_CHECKING = False  # not typing's: importing typing would cost every plugin start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChildConnection", "ChildContext", "HostError", "main"]

EXIT_OK, EXIT_USAGE, EXIT_LOAD, EXIT_PROTOCOL, EXIT_MEMORY = 0, 2, 3, 4, 5
_IMPLEMENTATION = "plughost-python-child/1"


class HostError(Exception):
    """A ``host.*`` request was refused or failed; ``code`` is the plughost error code."""

    def __init__(self, message: str, code: str, wire_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.wire_code = wire_code


class _Slot:
    """A pending host request: filled by the main thread, waited on by anyone."""

    __slots__ = ("done", "error", "event", "result", "waker")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        self.event: threading.Event | None = None
        self.waker: Any = None  # (loop, future) for async waiters


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class ChildConnection:
    """The child's end of the session: framing, request ids, re-entrant pumping."""

    def __init__(self, rfd: int = 0, wfd: int = 1, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.decoder = FrameDecoder(max_frame)
        self._out: list[bytes] = []
        self._wlock = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._next_id = 0
        self._main = threading.get_ident()
        self._cancelled: set[Any] = set()
        self._fast: dict[tuple[Any, Any], bool] = {}
        self._backlog: list[bytes] = []
        self._tasks: dict[Any, Any] = {}  # request id -> concurrent future (async handlers)
        self.closed = False
        self.handler: Any = None  # callable(method, params) -> result; set by the runner

    # -- output --------------------------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        """Queue one message; written at the next :meth:`flush` (or now, off the main thread)."""
        frame = encode_frame(dumps(msg))
        if threading.get_ident() == self._main:
            self._out.append(frame)
        else:
            with self._wlock:
                _write_all(self.wfd, frame)

    def flush(self) -> None:
        """Write every queued frame in one system call."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            with self._wlock:
                _write_all(self.wfd, data)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification and flush it."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        if threading.get_ident() == self._main:
            self.flush()

    # -- host requests -------------------------------------------------------------------------
    def _start_request(self, method: str, params: Any) -> tuple[int, _Slot]:
        with self._wlock:
            self._next_id += 1
            rid = self._next_id
        slot = _Slot()
        self._pending[rid] = slot
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid, slot

    def request(self, method: str, params: Any = None) -> Any:
        """Call the host and wait for the answer; raises :class:`HostError` on refusal."""
        _, slot = self._start_request(method, params)
        if threading.get_ident() == self._main:
            self.flush()
            while not slot.done:
                if not self.pump():
                    raise HostError("the host closed the connection", "plugin.unavailable", 0)
        else:
            slot.event = threading.Event()
            if not slot.done:
                slot.event.wait()
        return self._outcome(slot)

    async def arequest(self, method: str, params: Any = None) -> Any:
        """Call the host from a coroutine running on the helper loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        _, slot = self._start_request(method, params)
        slot.waker = (loop, fut)
        if slot.done:
            return self._outcome(slot)
        await fut
        return self._outcome(slot)

    @staticmethod
    def _outcome(slot: _Slot) -> Any:
        if slot.error is not None:
            err = slot.error
            raw = err.get("data")
            data: dict[str, Any] = raw if isinstance(raw, dict) else {}
            raise HostError(
                str(err.get("message")), str(data.get("code") or "host.error"), err.get("code", 0)
            )
        return slot.result

    # -- input ---------------------------------------------------------------------------------
    def wait_assign(self) -> dict[str, Any]:
        """A warm spare's first message must be ``$/assign``; return its params."""
        while True:
            data = os.read(self.rfd, 262144)
            if not data:
                raise EOFError("the host closed the connection before assigning a plugin")
            bodies = self.decoder.feed(data)
            if bodies:
                msg = decode_message(bodies[0])
                if msg.get("method") != ASSIGN or type(msg.get("params")) is not dict:
                    raise ValueError(f"expected {ASSIGN!r} first, got {msg.get('method')!r}")
                self._backlog = bodies[1:]
                return dict(msg["params"])

    def drain_backlog(self) -> None:
        """Handle messages that arrived together with the assignment."""
        backlog, self._backlog = self._backlog, []
        for body in backlog:
            self._handle(decode_message(body))
        self.flush()

    def pump(self) -> bool:
        """Read once and handle every complete message; ``False`` on end of input."""
        try:
            data = os.read(self.rfd, 262144)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            return True
        if not data:
            self.closed = True
            return False
        for body in self.decoder.feed(data):
            self._handle(decode_message(body))
        self.flush()
        return not self.closed

    def _handle(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if method is None:  # a response to one of our requests
            slot = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if slot is None:
                return
            slot.result = msg.get("result")
            slot.error = msg.get("error")
            slot.done = True
            if slot.event is not None:
                slot.event.set()
            if slot.waker is not None:
                loop, fut = slot.waker
                loop.call_soon_threadsafe(_resolve, fut)
            return
        rid = msg.get("id")
        if method == CANCEL:
            target = (msg.get("params") or {}).get("id")
            task = self._tasks.get(target)
            if task is not None:
                task.cancel()
            elif len(self._cancelled) < 4096:  # ids of requests already answered pile up here
                self._cancelled.add(target)
            return
        if method == EXIT:
            self.closed = True
            return
        if rid is not None and rid in self._cancelled:
            self._cancelled.discard(rid)
            self.send(_error(rid, WireCode.REQUEST_CANCELLED, "request cancelled"))
            return
        params = msg.get("params") or {}
        # Responses of one read go out in one write, but never wait behind a handler that may
        # be slow: unless this target was fast last time, flush what is queued before running it.
        target = params.get("target") if type(params) is dict else None
        key = (method, target if type(target) is str else None)
        fast = self._fast.get(key, False)
        if self._out and not fast:
            self.flush()
        started = perf_counter()
        try:
            result = self.handler(method, params)
        except MemoryError:
            _die_oom()
        except _Reply as reply:
            if rid is not None:
                self.send({"jsonrpc": "2.0", "id": rid, "error": reply.error})
            return
        except BaseException as exc:  # every failure is answered, never fatal to the runner
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            if rid is not None:
                self.send({"jsonrpc": "2.0", "id": rid, "error": error_to_wire(exc)})
            else:
                _log_exception(method, exc)
            return
        finally:
            self._fast[key] = perf_counter() - started < 0.0002
        if hasattr(result, "__await__"):
            self._run_async(rid, method, result)
        elif rid is not None:
            self.send({"jsonrpc": "2.0", "id": rid, "result": result})

    # -- async handlers ------------------------------------------------------------------------
    def _run_async(self, rid: Any, method: str, coro: Any) -> None:
        loop = _helper_loop()
        import asyncio

        fut = asyncio.run_coroutine_threadsafe(_await(coro), loop)
        if rid is None:
            return
        self._tasks[rid] = fut

        def done(f: Any) -> None:
            self._tasks.pop(rid, None)
            if f.cancelled():
                self.send(_error(rid, WireCode.REQUEST_CANCELLED, "request cancelled"))
                return
            exc = f.exception()
            if exc is None:
                self.send({"jsonrpc": "2.0", "id": rid, "result": f.result()})
            elif isinstance(exc, _Reply):
                self.send({"jsonrpc": "2.0", "id": rid, "error": exc.error})
            else:
                self.send({"jsonrpc": "2.0", "id": rid, "error": error_to_wire(exc)})

        fut.add_done_callback(done)


def _resolve(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


_LOOP: Any = None
_LOOP_THREAD: int | None = None


def _helper_loop() -> Any:
    """The asyncio loop for ``async def`` handlers, started on first use only."""
    global _LOOP, _LOOP_THREAD
    if _LOOP is None:
        import asyncio

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="plughost-async", daemon=True)
        thread.start()
        _LOOP, _LOOP_THREAD = loop, thread.ident
    return _LOOP


class _Reply(Exception):
    """Raised by the runner to answer with a specific JSON-RPC error."""

    def __init__(self, code: int, message: str, data_code: str) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "data": {"code": data_code}}


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _log_exception(where: str, exc: BaseException) -> None:
    import traceback

    sys.stderr.write(f"plughost child: {where} failed:\n")
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()


def _die_oom() -> None:
    # The memory limit (RLIMIT_AS) was hit: answering may itself need memory, so say so on
    # stderr with a preallocated message and leave with a code the host reports as such.
    os.write(2, b"plughost child: MemoryError: memory limit reached\n")
    os._exit(EXIT_MEMORY)


# --- the context a plugin sees out of process ----------------------------------------------------
class _Service:
    """Base of the host-service proxies: sync in plain code, awaitable inside a coroutine."""

    __slots__ = ("_conn",)

    def __init__(self, conn: ChildConnection) -> None:
        self._conn = conn

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        if _LOOP_THREAD is not None and threading.get_ident() == _LOOP_THREAD:
            return self._conn.arequest(method, params)  # inside an async handler: awaitable
        return self._conn.request(method, params)


class _Bus(_Service):
    def emit(self, topic: str, payload: Any = None) -> Any:
        """Publish an event (needs ``events:emit:<topic>``)."""
        return self._call("host.emit", {"topic": topic, "payload": payload})


class _Commands(_Service):
    def execute(self, command: str, **kwargs: Any) -> Any:
        """Run a command provided by the host or another plugin."""
        return self._call("host.execute", {"command": command, "args": kwargs})


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
                        "host.log",
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
def _normalise_health(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or value is None:
        return {"ok": value is not False, "detail": "", "data": {}}
    if isinstance(value, dict):
        return {"ok": bool(value.get("ok", True)), **value}
    return {
        "ok": bool(getattr(value, "ok", True)),
        "detail": str(getattr(value, "detail", "")),
        "data": dict(getattr(value, "data", {}) or {}),
    }


def _exports_of(obj: Any) -> list[dict[str, Any]]:
    # A plugin that never imported the decorators cannot have decorated exports: do not pay
    # for importing them (and the communication core behind them) on its behalf.
    if "plughost.sdk.decorators" not in sys.modules:
        return []
    from plughost.sdk.decorators import collect_exports

    return [
        {"kind": e.kind, "name": e.name, "target": e.target, "options": dict(e.options)}
        for e in collect_exports(obj)
    ]


class PluginRunner:
    """Maps ``plugin.*`` methods onto a plugin object."""

    def __init__(self, conn: ChildConnection, entry_obj: Any) -> None:
        self.conn = conn
        self.entry_obj = entry_obj
        self.plugin: Any = None
        self.targets: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        if method == "plugin.call" or method == "plugin.event":
            fn = self.targets.get(params.get("target"))  # type: ignore[arg-type]
            if fn is None:
                raise _Reply(
                    WireCode.NOT_FOUND,
                    f"no export with target {params.get('target')!r}; "
                    f"known: {sorted(self.targets)}",
                    "plugin.not_found",
                )
            result = fn(**(params.get("args") or {}))
            if method == "plugin.event" and not hasattr(result, "__await__"):
                return None  # events have no result (docs/protocol.md §6)
            return result
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            raise _Reply(
                WireCode.METHOD_NOT_FOUND, f"method {method!r} not supported", "plugin.method"
            )
        return handler(params)

    def _plugin_activate(self, params: dict[str, Any]) -> Any:
        obj = self.entry_obj
        # A class is instantiated; a factory is called; any other object is the plugin itself.
        is_factory = isinstance(obj, type) or (callable(obj) and not hasattr(obj, "activate"))
        plugin = obj() if is_factory else obj
        ctx = ChildContext(self.conn, params)
        plugin.ctx = ctx
        self.plugin = plugin
        exports = _exports_of(plugin)
        self.targets = {e["target"]: getattr(plugin, e["target"]) for e in exports}
        for e in exports:
            if e["kind"] == "event":  # the host sends event=<Event.to_dict()>; hand over an object
                self.targets[e["target"]] = _event_adapter(self.targets[e["target"]])
        self.channels = {
            e["name"]: self.targets[e["target"]] for e in exports if e["kind"] == "channel"
        }
        activate = getattr(plugin, "activate", None)
        result = activate(ctx) if activate is not None else None
        if hasattr(result, "__await__"):
            pending: Any = result

            async def finish() -> Any:
                await pending
                return {"exports": exports}

            return finish()
        return {"exports": exports}

    def _plugin_deactivate(self, params: dict[str, Any]) -> Any:
        fn = getattr(self.plugin, "deactivate", None)
        result = fn() if fn is not None else None
        return result if hasattr(result, "__await__") else None

    def _plugin_health(self, params: dict[str, Any]) -> Any:
        fn = getattr(self.plugin, "health", None)
        value = fn() if fn is not None else True
        if hasattr(value, "__await__"):

            async def finish() -> Any:
                return _normalise_health(await value)

            return finish()
        return _normalise_health(value)

    def _plugin_export_state(self, params: dict[str, Any]) -> Any:
        fn = getattr(self.plugin, "export_state", None)
        return {"state": fn() if fn is not None else None}

    def _plugin_import_state(self, params: dict[str, Any]) -> Any:
        fn = getattr(self.plugin, "import_state", None)
        if fn is None:
            return None
        result = fn(params.get("state"), params.get("from_version") or "")
        return result if hasattr(result, "__await__") else None

    def _channel_message(self, params: dict[str, Any]) -> Any:
        fn = self.channels.get(params.get("channel"))  # type: ignore[arg-type]
        if fn is None:
            raise _Reply(
                WireCode.NOT_FOUND, f"no channel {params.get('channel')!r}", "plugin.not_found"
            )
        reply = fn(stream=params.get("stream"), data=params.get("data"))
        if reply is not None and not hasattr(reply, "__await__"):
            self.conn.send(
                {
                    "jsonrpc": "2.0",
                    "method": "channel.message",
                    "params": {
                        "channel": params.get("channel"),
                        "stream": params.get("stream"),
                        "data": reply,
                    },
                }
            )
        return None

    def _channel_close(self, params: dict[str, Any]) -> Any:
        return None


class RemoteEvent(dict):  # type: ignore[type-arg]
    """An event delivered across the process boundary: ``event.topic`` and ``event["topic"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _event_adapter(fn: Any) -> Any:
    def deliver(event: Any = None, **kwargs: Any) -> Any:
        if isinstance(event, dict):
            event = RemoteEvent(event)
        return fn(event, **kwargs) if event is not None else fn(**kwargs)

    return deliver


def _load_entry(entry: str) -> Any:
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"entry {entry!r} must be 'module:Attribute'")
    import importlib

    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _apply_limits(limits: dict[str, Any]) -> None:
    """A warm spare applies its plugin's limits to itself (a cold start gets them before exec)."""
    import math
    import resource

    if limits.get("memory") is not None:
        resource.setrlimit(resource.RLIMIT_AS, (int(limits["memory"]), int(limits["memory"])))
    if limits.get("cpu") is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = max(1, math.ceil(used.ru_utime + used.ru_stime + float(limits["cpu"])))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    if limits.get("open_files") is not None:
        n = int(limits["open_files"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def _start_watchdog(fd: int) -> None:
    """Exit as soon as the host's end of our stdin closes, whatever the main thread is doing."""
    import select

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLHUP | select.POLLERR)
        while True:
            for _, ev in poller.poll():
                if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    os._exit(EXIT_OK)

    threading.Thread(target=watch, name="plughost-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m plughost.sdk.child module:Attribute``."""
    args = sys.argv[1:] if argv is None else argv
    token = os.environ.get(ENV_TOKEN)
    plugin_id = os.environ.get(ENV_PLUGIN_ID, "")
    spare = os.environ.get(ENV_SPARE) == "1"
    if not token or len(args) != (0 if spare else 1):
        sys.stderr.write(
            "This is the plughost plugin runner. It is started by a plughost host, which "
            f"passes ${ENV_TOKEN} and speaks JSON-RPC on stdin/stdout.\n"
            "Usage (by the host only): python -m plughost.sdk.child module:Attribute\n"
        )
        return EXIT_USAGE
    enable_fast_json()
    # The plugin's stdout is the protocol channel: keep stray print() calls off it.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    max_frame = int(os.environ.get(ENV_MAX_FRAME) or DEFAULT_MAX_FRAME)
    conn = ChildConnection(0, out_fd, max_frame)
    _start_watchdog(0)
    try:
        if spare:
            # A warm spare: pay in advance for what (nearly) every plugin imports, then wait.
            import plughost.errors
            import plughost.sdk.decorators
            import plughost.sdk.plugin  # noqa: F401

            conn.notify(SPARE_READY)
            assigned = conn.wait_assign()
            plugin_id = str(assigned["plugin_id"])
            os.environ[ENV_PLUGIN_ID] = plugin_id
            os.chdir(str(assigned["cwd"]))
            _apply_limits(assigned.get("limits") or {})  # before any plugin code runs
            entry = str(assigned["entry"])
        else:
            entry = args[0]
    except Exception as exc:  # no or bad assignment: nothing to run
        sys.stderr.write(f"plughost child: spare not assigned: {exc}\n")
        return EXIT_PROTOCOL
    sys.path.insert(0, os.getcwd())
    try:
        obj = _load_entry(entry)
    except BaseException as exc:
        import traceback

        error = {
            "message": f"cannot load entry {entry!r}: {type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        conn.notify(
            HELLO,
            hello_params(
                plugin_id=plugin_id, token=token, implementation=_IMPLEMENTATION, error=error
            ),
        )
        return EXIT_LOAD
    conn.handler = PluginRunner(conn, obj)
    conn.notify(
        HELLO, hello_params(plugin_id=plugin_id, token=token, implementation=_IMPLEMENTATION)
    )
    try:
        conn.drain_backlog()
        while conn.pump():
            pass
    except MemoryError:
        _die_oom()
    except Exception as exc:  # a protocol error from the host: say why, leave with code 4
        sys.stderr.write(f"plughost child: ending session: {exc}\n")
        return EXIT_PROTOCOL
    conn.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
