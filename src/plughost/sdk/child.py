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

from plughost.runtimes.process.framing import DEFAULT_MAX_FRAME
from plughost.runtimes.process.protocol import (
    ENV_MAX_FRAME,
    ENV_PLUGIN_ID,
    ENV_SPARE,
    ENV_TOKEN,
    HELLO,
    SPARE_READY,
    WireCode,
    enable_fast_json,
    encode_hello,
    hello_params,
)
from plughost.sdk._remote_context import ChildContext
from plughost.sdk._wire import ChildConnection, HostError, _die_oom, _Reply

TYPE_CHECKING = False  # not typing's: importing typing would cost every plugin start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChildConnection", "ChildContext", "HostError", "main"]

EXIT_OK, EXIT_USAGE, EXIT_LOAD, EXIT_PROTOCOL, EXIT_MEMORY = 0, 2, 3, 4, 5
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
            target = params.get("target")
            if target == "on_config_change":
                return self._config_change(params.get("args") or {})
            fn = self.targets.get(target)  # type: ignore[arg-type]
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

    def _config_change(self, args: dict[str, Any]) -> Any:
        """The host's config-change hook: ask the plugin (it may refuse by raising), then keep
        ``ctx.config`` in step — it is live in process, so it is live here too."""
        old, new = dict(args.get("old") or {}), dict(args.get("new") or {})
        fn = getattr(self.plugin, "on_config_change", None)
        result = fn(old, new) if callable(fn) else None
        ctx = getattr(self.plugin, "ctx", None)
        if hasattr(result, "__await__"):
            pending: Any = result

            async def finish() -> None:
                await pending
                if ctx is not None:
                    ctx.config = new

            return finish()
        if ctx is not None:
            ctx.config = new
        return None

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
                WireCode.NOT_FOUND, f"no channel {params.get('channel')!r}", "plugin.no_target"
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
    # The plugin's stdout is the protocol channel: keep stray print() calls off it.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    max_frame = int(os.environ.get(ENV_MAX_FRAME) or DEFAULT_MAX_FRAME)
    conn = ChildConnection(0, out_fd, max_frame)
    if not spare:  # a spare starts it once confined: confinement applies to one thread only
        _start_watchdog(0)
    try:
        if spare:
            # A warm spare: pay in advance for what (nearly) every plugin imports, then wait.
            import plughost.errors
            import plughost.sdk.decorators
            import plughost.sdk.plugin  # noqa: F401
            from plughost.runtimes.process.confine import confine_self

            enable_fast_json()  # a spare pays for orjson in advance too
            conn.notify(SPARE_READY)
            assigned = conn.wait_assign()
            plugin_id = str(assigned["plugin_id"])
            os.environ[ENV_PLUGIN_ID] = plugin_id
            os.chdir(str(assigned["cwd"]))
            _apply_limits(assigned.get("limits") or {})  # before any plugin code runs
            if assigned.get("confine"):  # Landlock and seccomp, as a cold start gets them
                confine_self(assigned["confine"])
            _start_watchdog(0)
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
