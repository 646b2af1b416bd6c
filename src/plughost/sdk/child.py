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

from plughost.core.wire import (
    DEFAULT_MAX_FRAME,
    ENV_MAX_FRAME,
    ENV_PLUGIN_ID,
    ENV_SPARE,
    ENV_TOKEN,
    EXIT_LOAD,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_USAGE,
    M,
    WireCode,
    enable_fast_json,
    encode_hello,
    hello_params,
    notification,
)
from plughost.sdk._connection import (
    ChildConnection,
    HostError,
    _die_oom,
    _helper_loop,
    _Reply,
)
from plughost.sdk._remote_context import ChildContext, trace_context

TYPE_CHECKING = False  # not typing's: importing typing would cost every plugin start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChildConnection", "ChildContext", "HostError", "PluginRunner", "main", "serve"]

_IMPLEMENTATION = "plughost-python-child/1"


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


def _then(result: Any, finish: Any) -> Any:
    """``finish(value)`` now, or a coroutine doing it once an awaitable ``result`` is done."""
    if hasattr(result, "__await__"):

        async def later() -> Any:
            return finish(await result)

        return later()
    return finish(result)


def _none(_: Any) -> None:
    return None


_TRACE_FIELDS = ("traceparent", "tracestate")
_UNTRACED = frozenset(_TRACE_FIELDS)  # params without any of these carry no trace context
_otel: Any = None  # the opentelemetry modules, False when not importable; loaded on first need


def _load_otel() -> Any:
    global _otel
    if _otel is None:
        try:
            from opentelemetry import context, trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            _otel = (context, trace, TraceContextTextMapPropagator())
        except ImportError:
            _otel = False
    return _otel


def _traced(kind: str, label: Any, params: dict[str, Any], run: Any) -> Any:
    """``run()`` under the host's trace context (docs/protocol.md, "Trace context"): exposed as
    ``ctx.trace_parent``, and, when opentelemetry is importable here, as the remote parent of a
    span ``"{kind} {label}"`` that is current while the handler runs (sync or async)."""
    if _UNTRACED.isdisjoint(params):  # untraced: the hot path
        if trace_context.get() is not None:
            trace_context.set(None)
        return run()
    fields = {k: params[k] for k in _TRACE_FIELDS if type(params.get(k)) is str}
    trace_context.set(fields or None)
    otel: Any = _load_otel() if fields else False
    if not otel:
        return run()
    context, trace, propagator = otel
    span = trace.get_tracer("plughost.plugin").start_span(
        f"{kind} {label}", context=propagator.extract(fields), kind=trace.SpanKind.SERVER)
    current = trace.set_span_in_context(span)

    def end(error: BaseException | None) -> None:
        if error is not None:
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
        span.end()

    token = context.attach(current)
    try:
        result = run()
    except BaseException as exc:
        end(exc)
        raise
    finally:
        context.detach(token)
    if not hasattr(result, "__await__"):
        end(None)
        return result

    async def later() -> Any:
        trace_context.set(fields)
        inner = context.attach(current)
        try:
            value = await result
        except BaseException as exc:
            end(exc)
            raise
        finally:
            context.detach(inner)
        end(None)
        return value

    return later()


class PluginRunner:
    """Maps the ``plugin.*`` and ``channel.*`` methods of docs/protocol.md onto a plugin object.

    The callbacks are those of :class:`plughost.sdk.Plugin`, so a plugin runs out of process
    unchanged: exported handlers get the same arguments (an event object with ``topic`` and
    ``payload``, a channel end with ``send``/``receive``/``close``), and ``ctx.config`` follows
    configuration changes as it does in process.
    """

    def __init__(self, conn: ChildConnection, entry_obj: Any) -> None:
        self.conn = conn
        self.entry_obj = entry_obj
        self.plugin: Any = None
        self.targets: dict[str, Any] = {}
        self.streams: dict[tuple[str, str], RemoteChannel] = {}
        self._methods = {
            M.ACTIVATE: self._activate,
            M.CALL: self._call,
            M.EVENT: self._event,
            M.HEALTH: self._health,
            M.EXPORT_STATE: self._export_state,
            M.IMPORT_STATE: self._import_state,
            M.CONFIG_CHANGE: self._config_change,
            M.ENABLE: self._enable,
            M.DISABLE: self._disable,
            M.DEACTIVATE: self._deactivate,
            M.CHANNEL_OPEN: self._channel_open,
            M.CHANNEL_MESSAGE: self._channel_message,
            M.CHANNEL_CLOSE: self._channel_close,
        }

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        handler = self._methods.get(method)
        if handler is None:
            raise _Reply(
                WireCode.METHOD_NOT_FOUND, f"method {method!r} not supported", "plugin.method"
            )
        return handler(params)

    def _target(self, target: Any) -> Any:
        fn = self.targets.get(target)
        if fn is None and type(target) is str and not target.startswith("_"):
            # As in process: the host may call any public method, exported or not.
            fn = getattr(self.plugin, target, None)
            fn = fn if callable(fn) else None
        if fn is None:
            raise _Reply(
                WireCode.NOT_FOUND,
                f"no export or public method {target!r}; exports: {sorted(self.targets)}",
                "plugin.no_target",
            )
        return fn

    def _call(self, params: dict[str, Any]) -> Any:
        target: Any = params.get("target")
        fn = self.targets.get(target) or self._target(target)
        args = params.get("args") or {}
        if _UNTRACED.isdisjoint(params) and trace_context.get() is None:  # nothing to set up
            return fn(**args)
        return _traced("plugin.call", target, params, lambda: fn(**args))

    def _event(self, params: dict[str, Any]) -> Any:
        # Events have no result (docs/protocol.md §6): the handler's return value is dropped.
        event = RemoteEvent(params.get("args") or {})
        fn = self._target(params.get("target"))
        return _then(_traced("plugin.event", event.topic, params, lambda: fn(event)), _none)

    def _instance(self) -> Any:
        """The plugin object, made on first need and kept, as in process: ``import_state``
        comes before ``plugin.activate``, and a deactivated plugin may be activated again."""
        if self.plugin is None:
            obj = self.entry_obj
            # A class is instantiated; a factory is called; any other object is the plugin.
            is_factory = isinstance(obj, type) or (callable(obj) and not hasattr(obj, "activate"))
            self.plugin = obj() if is_factory else obj
        return self.plugin

    def _hook(self, name: str, *args: Any) -> Any:
        """Run the plugin's optional callback ``name``; ``None`` when it has none."""
        fn = getattr(self._instance(), name, None)
        return fn(*args) if callable(fn) else None

    def _activate(self, params: dict[str, Any]) -> Any:
        plugin = self._instance()
        ctx = ChildContext(self.conn, params)
        plugin.ctx = ctx
        exports = _exports_of(plugin)
        self.targets = {e["target"]: getattr(plugin, e["target"]) for e in exports}
        result = self._hook("activate", ctx)
        return _then(result, lambda _: {"exports": exports})

    def _deactivate(self, params: dict[str, Any]) -> Any:
        for ch in list(self.streams.values()):
            ch._deliver_close("the plugin was deactivated")
        return _then(self._hook("deactivate"), _none)

    def _health(self, params: dict[str, Any]) -> Any:
        fn = getattr(self._instance(), "health", None)
        return _then(fn() if fn is not None else True, _normalise_health)

    def _export_state(self, params: dict[str, Any]) -> Any:
        return _then(self._hook("export_state"), lambda state: {"state": state})

    def _import_state(self, params: dict[str, Any]) -> Any:
        state, from_version = params.get("state"), params.get("from_version") or ""
        return _then(self._hook("import_state", state, from_version), _none)

    def _config_change(self, params: dict[str, Any]) -> Any:
        """Ask the plugin (it may refuse by raising), then keep ``ctx.config`` in step — it is
        live in process, so it is live here too."""
        old, new = dict(params.get("old") or {}), dict(params.get("new") or {})
        ctx = getattr(self.plugin, "ctx", None)

        def apply(_: Any) -> None:
            if ctx is not None:
                ctx.config = new

        return _then(self._hook("on_config_change", old, new), apply)

    def _enable(self, params: dict[str, Any]) -> Any:
        return _then(self._hook("on_enable"), _none)

    def _disable(self, params: dict[str, Any]) -> Any:
        return _then(self._hook("on_disable"), _none)

    # -- channels: each stream is served by the exported async handler, given a channel end ----
    def _channel_open(self, params: dict[str, Any]) -> None:
        name, stream = str(params.get("channel")), str(params.get("stream"))
        ch = RemoteChannel(self.conn, name, stream)
        try:
            handler = self._target(params.get("target"))
        except _Reply as exc:  # a notification has no answer: end the stream, saying why
            ch._closed_here(exc.message)
            return
        self.streams[(name, stream)] = ch
        import asyncio

        async def serve() -> None:
            reason = None
            try:
                await handler(ch)
            except Exception as exc:
                reason = f"the handler failed: {type(exc).__name__}: {exc}"
            finally:
                self.streams.pop((name, stream), None)
                ch._closed_here(reason)

        asyncio.run_coroutine_threadsafe(
            _traced("plugin.channel", name, params, serve), _helper_loop())

    def _channel_message(self, params: dict[str, Any]) -> None:
        ch = self.streams.get((str(params.get("channel")), str(params.get("stream"))))
        if ch is not None:  # a message for a stream that ended here: the host will learn
            ch._deliver(params.get("data"))

    def _channel_close(self, params: dict[str, Any]) -> None:
        ch = self.streams.get((str(params.get("channel")), str(params.get("stream"))))
        if ch is not None:
            ch._deliver_close(params.get("reason"))


class RemoteEvent(dict):  # type: ignore[type-arg]
    """An event delivered across the process boundary: ``event.topic`` and ``event["topic"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_END = object()


class RemoteChannel:
    """The plugin's end of one channel stream, with the in-process :class:`Channel` API.

    Lives on the runner's helper event loop (channel handlers are ``async def``): ``receive``
    and ``async for`` read what the host sends, ``send`` writes a ``channel.message``, ``close``
    a ``channel.close``.
    """

    def __init__(self, conn: ChildConnection, name: str, stream: str) -> None:
        import asyncio

        self._conn = conn
        self.name = name
        self.id = stream
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = _helper_loop()
        self._closed = False  # this end can no longer send
        self._error: str | None = None

    @property
    def closed(self) -> bool:
        """True once either end has closed."""
        return self._closed

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"channel": self.name, "stream": self.id, **extra}

    def _deliver(self, data: Any) -> None:  # runner thread -> helper loop
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, data)

    def _deliver_close(self, reason: Any) -> None:
        def end() -> None:
            self._closed = True
            self._error = str(reason) if reason else None
            self._inbox.put_nowait(_END)

        self._loop.call_soon_threadsafe(end)

    def _closed_here(self, reason: str | None) -> None:
        if not self._closed:
            self._closed = True
            params = self._params(reason=reason) if reason else self._params()
            self._conn.send(notification(M.CHANNEL_CLOSE, params))

    async def send(self, message: Any) -> None:
        """Send ``message`` to the other end."""
        if self._closed:
            from plughost.errors import ChannelClosed

            raise ChannelClosed(f"Channel {self.name!r} is closed; nothing more can be sent")
        self._conn.send(notification(M.CHANNEL_MESSAGE, self._params(data=message)))

    async def receive(self) -> Any:
        """The next message; ``StopAsyncIteration`` after an orderly close."""
        item = await self._inbox.get()
        if item is _END:
            self._inbox.put_nowait(_END)  # later reads end too
            if self._error:
                from plughost.errors import ChannelClosed

                raise ChannelClosed(f"Channel {self.name!r} was closed: {self._error}")
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> RemoteChannel:
        return self

    async def __anext__(self) -> Any:
        return await self.receive()

    def close(self) -> None:
        """Close this end (orderly); idempotent."""
        self._closed_here(None)

    async def __aenter__(self) -> RemoteChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


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


def _preload() -> None:
    """Pay in advance for what (nearly) every plugin imports: a warm spare and the fork server."""
    import plughost.errors
    import plughost.runtimes.process.confine
    import plughost.sdk.decorators
    import plughost.sdk.plugin  # noqa: F401

    enable_fast_json()


def _take_assignment(conn: ChildConnection) -> str:
    """A pre-started runner (warm spare, fork-server child) becomes its plugin: wait for
    ``$/assign``, take its environment, directory, limits and confinement — all before any
    plugin code runs — and return the entry to load."""
    from plughost.runtimes.process.confine import confine_self

    assigned = conn.wait_assign()
    env = assigned.get("env")
    if type(env) is dict:  # exactly the plugin's environment: nothing of the runner's stays
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
    else:
        os.environ[ENV_PLUGIN_ID] = str(assigned["plugin_id"])
    prefix = os.environ.get("PYTHONPYCACHEPREFIX")
    if prefix:  # the plugin's own .pyc directory (started without one: it had no plugin yet)
        sys.pycache_prefix = prefix
        sys.dont_write_bytecode = False
    os.chdir(str(assigned["cwd"]))
    _apply_limits(assigned.get("limits") or {})  # before any plugin code runs
    if assigned.get("confine"):  # Landlock and seccomp, as a cold start gets them
        confine_self(assigned["confine"])
    _start_watchdog(0)
    return str(assigned["entry"])


def _protocol_fds() -> ChildConnection:
    """Keep stray ``print()`` calls off the protocol channel: stdout becomes stderr, and the
    session writes to a duplicate of the original stdout."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    max_frame = int(os.environ.get(ENV_MAX_FRAME) or DEFAULT_MAX_FRAME)
    return ChildConnection(0, out_fd, max_frame)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m plughost.sdk.child module:Attribute``."""
    args = sys.argv[1:] if argv is None else argv
    token = os.environ.get(ENV_TOKEN)
    spare = os.environ.get(ENV_SPARE) == "1"
    if not token or len(args) != (0 if spare else 1):
        sys.stderr.write(
            "This is the plughost plugin runner. It is started by a plughost host, which "
            f"passes ${ENV_TOKEN} and speaks JSON-RPC on stdin/stdout.\n"
            "Usage (by the host only): python -m plughost.sdk.child module:Attribute\n"
        )
        return EXIT_USAGE
    conn = _protocol_fds()
    if not spare:  # a spare starts it once confined: confinement applies to one thread only
        _start_watchdog(0)
        return run(conn, args[0])
    _preload()
    conn.notify(M.SPARE)
    return run_assigned(conn)


def run_assigned(conn: ChildConnection) -> int:
    """Serve the plugin a ``$/assign`` names (a warm spare, a fork-server child)."""
    try:
        entry = _take_assignment(conn)
    except Exception as exc:  # no or bad assignment: nothing to run
        sys.stderr.write(f"plughost child: spare not assigned: {exc}\n")
        return EXIT_PROTOCOL
    return run(conn, entry)


def run(conn: ChildConnection, entry: str) -> int:
    """Load ``entry`` from the working directory and serve it; the exit status."""
    token = os.environ.get(ENV_TOKEN, "")
    plugin_id = os.environ.get(ENV_PLUGIN_ID, "")
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
            M.HELLO,
            hello_params(
                plugin_id=plugin_id, token=token, implementation=_IMPLEMENTATION, error=error
            ),
        )
        return EXIT_LOAD
    return serve(conn, obj, plugin_id=plugin_id, token=token)


def serve(conn: ChildConnection, obj: Any, *, plugin_id: str, token: str) -> int:
    """Say ``$/hello`` and serve ``obj`` (the loaded entry) on ``conn`` until the session ends.

    Returns the exit status. :func:`main` calls it on stdin/stdout; the in-memory pair of
    :mod:`plughost.sdk.testing` calls it on a pipe, in a thread.
    """
    conn.handler = PluginRunner(conn, obj)
    # Ready: say so without importing any JSON module, then load the fast codec while the host
    # prepares plugin.activate (orjson's own imports cost more than the stdlib json's).
    hello = hello_params(plugin_id=plugin_id, token=token, implementation=_IMPLEMENTATION)
    conn.send_body(encode_hello(hello))
    conn.flush()
    enable_fast_json()
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
