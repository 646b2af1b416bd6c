"""One running wasm plugin: its own ``Store``, its limits, and the fast call paths into it.

Ownership: the instance owns its store and closes it explicitly (``stop``/``close``/after a
trap); nothing relies on ``__del__``. After ``close()`` every call raises
:class:`PluginUnavailable`.

Calls run synchronously on the caller's thread (a trivial export costs microseconds; handing it
to a thread pool would cost a hundred times more). Runaway code cannot block the caller past its
limits: fuel is refilled to ``limits.fuel`` before each call and the store's epoch deadline is set
from the call's timeout; the runtime's ticker thread advances the epoch while the call runs with
the GIL released. A trap (timeout, memory cap, crash) discards the store, and the next call runs
in a fresh one with ``plughost_activate`` run again: a crashed sandbox never serves another call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime

from plughost.errors import (
    PermissionDenied,
    PlughostError,
    PluginActivationError,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    PluginUnavailable,
    ProtocolError,
)
from plughost.runtimes.base import Export, Health
from plughost.runtimes.stepchannels import serve_by_steps

from . import _ffi, abi
from ._ffi import TRAPPED, make_invoker
from .bindings import HostDispatch, LogLimiter, WasmBindings
from .compiled import CompiledPlugin
from .exports import declared_exports, parse_exports
from .limits import PAGE, WasmLimits, format_bytes
from .traps import first_line, memory_exceeded, trap_error

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel

    from .runtime import WasmRuntime

__all__ = ["WasmInstance"]

log = logging.getLogger(__name__)

_UNLIMITED_FUEL = 1 << 62
# host callbacks invoked with positional arguments (``listener(old, new)``): a JSON handler
# needs names, so these go through ``call`` with ``{"old": ..., "new": ...}`` instead
POSITIONAL_HOOKS = frozenset({"on_config_change"})


@dataclass(slots=True)
class _Live:
    """Everything tied to one store: replaced wholesale when the store is recycled."""

    store: wasmtime.Store
    ctx: int
    instance: wasmtime.Instance
    keep: list[Any] = field(default_factory=list)  # Func/Memory objects whose structs we address
    memory_addr: int = 0


class WasmInstance:
    """A loaded wasm plugin (implements :class:`plughost.runtimes.base.PluginInstance`)."""

    def __init__(
        self,
        runtime: WasmRuntime,
        compiled: CompiledPlugin,
        plugin_id: str,
        limits: WasmLimits,
        *,
        declared_commands: Sequence[str] = (),
        root: Path | None = None,
    ) -> None:
        self._runtime = runtime
        self._compiled = compiled
        self._plugin_id = plugin_id
        self.limits = limits
        self.root = root
        self._declared_commands = tuple(declared_commands)
        self._lock = threading.Lock()
        self._host_thread: int | None = None  # thread serving a host call for this instance
        self._live: _Live | None = None
        self._ctx: int | None = None  # hot-path copy of self._live.ctx
        self._fuel = limits.fuel or _UNLIMITED_FUEL
        self._bindings: WasmBindings | None = None
        self._dispatch: HostDispatch | None = None
        self._exports: tuple[Export, ...] = ()
        self._closed = False
        self._failed: PluginError | None = None
        self._restart_at: float | None = None
        self._last_failure = ""
        self._off_loop = False  # calls go through a worker thread (async host services)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline = 0.0  # monotonic deadline of the call in progress
        self._pending_state: dict[str, Any] | None = None  # import_state before start
        # (size, asked) of a memory.grow refused at the memory limit since the call began
        self._grow_refused: tuple[int, int] | None = None
        self._supervisor = runtime.new_supervisor()
        # name -> [func address]: one mutable cell per export, re-pointed when the store changes
        self._cells: dict[str, list[int]] = {}
        self._invokers: dict[str, tuple[_ffi.RawCall, Callable[..., Any]]] = {}
        for name, (params, results) in compiled.functions.items():
            raw = _ffi.RawCall.for_signature(name, params, results)
            self._invokers[name] = (raw, make_invoker(raw))
            self._cells[name] = [0]
        self.counters = {
            "calls": 0,
            "errors": 0,
            "timeouts": 0,
            "crashes": 0,
            "restarts": 0,
            "denied": 0,
            "log_dropped_bytes": 0,
            "fuel_used": 0,
        }
        self._fuel_left = ctypes.c_uint64(0)  # read into after every call (see _count_fuel)

    # -- PluginInstance -------------------------------------------------------------------------

    @property
    def plugin_id(self) -> str:
        """The plugin's id."""
        return self._plugin_id

    @property
    def active(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._live is not None and self._bindings is not None

    async def start(self, context: Any) -> Sequence[Export]:
        """Create the store, instantiate, run ``plughost_activate``; return what it provides.

        ``context`` is a :class:`WasmBindings` or anything the runtime's bindings factory accepts
        (normally a ``PluginContext``).
        """
        bindings = self._bindings_from(context)
        if self._dispatch_for(bindings).awaits(self._compiled.host_imports):
            self._loop = asyncio.get_running_loop()
            return await asyncio.to_thread(self.start_sync, bindings)
        return self.start_sync(bindings)

    def _dispatch_for(self, bindings: WasmBindings) -> HostDispatch:
        dispatch = self._dispatch
        if dispatch is None or dispatch.bindings is not bindings:
            logger = bindings.logger or logging.getLogger(f"plughost.plugin.{self._plugin_id}")
            dispatch = HostDispatch(
                self._plugin_id,
                bindings,
                LogLimiter(logger, self.limits.output),
                self._await_result,
            )
            self._dispatch = dispatch
        return dispatch

    def _bindings_from(self, context: Any) -> WasmBindings:
        self._ensure_open()
        if isinstance(context, WasmBindings):
            return context
        return self._runtime.bindings_for(context, self)

    def start_sync(self, context: Any) -> Sequence[Export]:
        """Synchronous :meth:`start`."""
        bindings = self._bindings_from(context)
        if self.active:
            return self._exports
        self._bindings = bindings
        # async services are only reachable when calls run off the event loop thread
        self._off_loop = self._dispatch_for(bindings).awaits(self._compiled.host_imports)
        self._failed = None
        self._restart_at = None
        self._acquire()
        try:
            self._instantiate()
            self._exports = tuple(self._discover_exports())
        except BaseException:
            self._drop_store()
            self._bindings = None
            raise
        finally:
            self._lock.release()
        return self._exports

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Invoke the JSON handler export ``target`` with ``kwargs`` as its JSON request.

        Runs inline (microseconds). When the module imports a host function whose service is
        asynchronous, runs on a worker thread instead, so that host function can wait for the
        service's coroutine on this event loop.
        """
        if self._off_loop:
            self._loop = asyncio.get_running_loop()
            return await asyncio.to_thread(self.call_sync, target, kwargs, timeout=timeout)
        return self.call_sync(target, kwargs, timeout=timeout)

    def call_sync(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Synchronous :meth:`call` (what :meth:`local_callable` wraps)."""
        if not self._compiled.is_handler(target):
            raise self._no_handler(target)
        try:
            args = {} if kwargs is None else kwargs if type(kwargs) is dict else dict(kwargs)
            data = abi.encode_json(args).encode()
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"arguments for {target!r} are not JSON-serialisable: {exc}",
                plugin_id=self._plugin_id,
            ) from None
        out = self._call_json(target, data, timeout)
        return None if out is None else abi.decode_envelope(out, what=self._what(target))

    async def health(self) -> Health:
        """Healthy while active and not failed, and ``plughost_health`` (if exported) agrees.

        ``data`` carries the counters and memory size. The probe runs under the plugin's limits
        like any call; a probe that traps or errs makes the plugin unhealthy.
        """
        data = dict(self.stats())
        if self._closed:
            return Health(False, "closed", data)
        if self._failed is not None:
            return Health(False, f"failed: {self._failed.message}", data)
        if self._restart_at is not None and not self._revive_if_due():
            return Health(False, f"restarting after a crash: {self._last_failure}", data)
        if not self.active:
            return Health(False, "not active", data)
        if self._compiled.is_handler(abi.HEALTH):
            try:
                answer = await self.call(abi.HEALTH)
            except PlughostError as exc:
                return Health(False, f"health probe failed: {exc.message}", data)
            if isinstance(answer, dict):
                return Health(
                    bool(answer.get("ok")),
                    str(answer.get("detail", "")),
                    {**data, **(answer.get("data") or {})},
                )
            return Health(bool(answer), "ok" if answer else "the plugin reports unhealthy", data)
        return Health(True, "ok", data)

    # -- what the host asks beyond calls: events, state, configuration, enable/disable ---------

    async def deliver_event(self, target: str, event: Event) -> None:
        """Hand an event to the subscription handler ``target`` as ``{"event": <wire shape>}``."""
        await self.call(target, {"event": event.to_dict()})

    async def serve_channel(self, target: str, channel: Channel) -> None:
        """Serve one opened channel with the handler ``target``, one call per step of the
        conversation (:mod:`plughost.runtimes.stepchannels`): ``open``, each ``message``,
        ``close``; each answer says what to send and whether to end it."""
        await serve_by_steps(channel, lambda args: self.call(target, args), self._what(target))

    async def export_state(self) -> Any:
        """The guest's ``plughost_export_state`` answer; None when it exports none (no state)."""
        if not self._compiled.is_handler(abi.EXPORT_STATE):
            return None
        return await self.call(abi.EXPORT_STATE)

    async def import_state(self, state: Any, from_version: str) -> None:
        """Hand over the state ``from_version`` exported (update, rollback).

        Before :meth:`start` (the host's order) the state is kept and given to
        ``plughost_import_state`` right after instantiation, before ``plughost_activate``; on a
        running instance it is given at once. A module without the export keeps no state, so
        there is nothing to give it.
        """
        if not self._compiled.is_handler(abi.IMPORT_STATE):
            if state is not None:
                log.info("[%s] exports no %s: the state of %s is not carried over",
                         self._plugin_id, abi.IMPORT_STATE, from_version or "the old version")
            return
        request = {"state": state, "from_version": from_version}
        if self.active:
            await self.call(abi.IMPORT_STATE, request)
        else:
            self._ensure_open()
            self._pending_state = request

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """``on_config_change`` with ``{"old", "new"}`` (if exported); an error refuses it."""
        if self._compiled.is_handler(abi.CONFIG_CHANGE):
            await self.call(abi.CONFIG_CHANGE, {"old": dict(old), "new": dict(new)})

    async def enabled_changed(self, enabled: bool) -> None:
        """``plughost_enabled`` with ``{"enabled": bool}`` (if exported)."""
        if self._compiled.is_handler(abi.ENABLED):
            await self.call(abi.ENABLED, {"enabled": enabled})

    async def stop(self) -> None:
        """Run ``plughost_deactivate`` (if exported) and discard the store; idempotent."""
        if self._off_loop and self._live is not None:
            self._loop = asyncio.get_running_loop()
            await asyncio.to_thread(self.stop_sync)
        else:
            self.stop_sync()

    def stop_sync(self) -> None:
        """Synchronous :meth:`stop`."""
        self._acquire()
        try:
            if self._live is not None and self._compiled.is_handler(abi.DEACTIVATE):
                out = self._call_json_locked(abi.DEACTIVATE, b"{}", None, restart=False)
                if out is not None:
                    abi.decode_envelope(out, what=self._what(abi.DEACTIVATE))
        except PlughostError as exc:
            log.warning("[%s] deactivate failed: %s", self._plugin_id, exc)
        finally:
            self._drop_store()
            self._bindings = None
            self._restart_at = None
            self._lock.release()

    async def close(self) -> None:
        """Deactivate if needed and release the store for good; idempotent."""
        if self._closed:
            return
        try:
            await self.stop()
        finally:
            self.close_sync()

    def close_sync(self) -> None:
        """Synchronous :meth:`close`."""
        if self._closed:
            return
        try:
            self.stop_sync()
        finally:
            self._closed = True
            self._runtime._forget(self)

    def stats(self) -> Mapping[str, Any]:
        """Counters: calls, errors, timeouts, crashes, restarts, denied, fuel, memory, drops."""
        out: dict[str, Any] = dict(self.counters)
        if self._dispatch is not None:
            out["denied"] = self._dispatch.denied
            out["host_calls"] = self._dispatch.host_calls
            out["log_dropped_bytes"] = self._dispatch.limiter.dropped_bytes
        out["memory_bytes"] = self.memory_bytes()
        out["quarantined"] = self._failed is not None and bool(
            self._failed.details.get("quarantined")
        )
        out["cache"] = self._compiled.cache_source
        return out

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        """A synchronous ``fn(**kwargs)`` for a JSON handler: skips the coroutine machinery.

        None when ``target`` is not a handler, or when the plugin's calls must run off the event
        loop (it imports a host function backed by an async service): use :meth:`call` then.
        """
        if not self._compiled.is_handler(target) or self._off_loop:
            return None
        kinds = {e.kind for e in self._exports if e.target == target}
        if "channel" in kinds:
            return None  # a channel handler holds a live channel object: not a JSON call
        if target in POSITIONAL_HOOKS:
            return None  # the host calls these positionally; call() gets them as named JSON
        call = self.call_sync

        def invoke(*event: Any, **kwargs: Any) -> Any:
            if not event:  # commands and hooks: keyword arguments
                return call(target, kwargs)
            if len(event) != 1 or kwargs:
                raise TypeError(f"{self._plugin_id}:{target} takes keyword arguments, or one event")
            # the bus hands subscribers an Event; the guest gets {"event": <its wire shape>}
            data = event[0].to_dict() if hasattr(event[0], "to_dict") else event[0]
            return call(target, {"event": data})

        invoke.__name__ = target
        return invoke

    # -- extras -----------------------------------------------------------------------------------

    @property
    def exports(self) -> tuple[Export, ...]:
        """What the plugin provided at its last ``start``."""
        return self._exports

    def memory_bytes(self) -> int:
        """Current size of the linear memory (0 when no store)."""
        live = self._live
        if live is None:
            return 0
        return int(_ffi.memory_size(live.ctx, live.memory_addr))

    def export_function(self, name: str) -> Callable[..., Any]:
        """A fast synchronous caller for a numeric export (i32/i64/f32/f64 params and results).

        The signature was read once at load time; the returned function checks each argument's
        type and range, refills fuel, sets the deadline, makes the raw unchecked call and maps a
        trap to :class:`PluginTimeout` / :class:`PluginCrashed` like any other call.
        """
        if name not in self._invokers:
            exported = ", ".join(sorted(self._compiled.functions)) or "none"
            raise PluginError(
                f"{self._plugin_id} has no exported function {name!r} with i32/i64/f32/f64 "
                f"types; exported: {exported}",
                plugin_id=self._plugin_id,
            )
        raw, invoke = self._invokers[name]
        cell = self._cells[name]
        acquire, release = self._lock.acquire, self._lock.release
        set_fuel, set_deadline = _ffi.set_fuel, _ffi.set_epoch_deadline
        counters = self.counters
        monotonic = time.monotonic
        ticks_until = self._runtime.ticker.ticks_until
        timeout = self.limits.timeout
        inst = self

        def fast(*args: Any) -> Any:
            if not acquire(False):
                inst._wait_turn()
            try:
                ctx = inst._ctx
                if ctx is None:
                    ctx = inst._revive()
                set_fuel(ctx, inst._fuel)
                deadline = monotonic() + timeout
                set_deadline(ctx, ticks_until(deadline))
                inst._deadline = deadline  # async host services wait until this deadline
                inst._grow_refused = None
                counters["calls"] += 1
                result = invoke(ctx, cell[0], *args)
                inst._count_fuel(ctx)
                if result is not TRAPPED:
                    return result
                exc = inst._trap_error(raw, name, inst.limits.timeout)
                inst._after_failure(exc, restart=True)
                raise exc
            finally:
                release()

        fast.__name__ = name
        fast.__qualname__ = f"{self._plugin_id}.{name}"
        return fast

    # -- internals: store management --------------------------------------------------------------

    def _instantiate(self) -> None:
        """Make a fresh store + instance and run ``plughost_activate`` (lock held)."""
        rt = self._runtime
        store = wasmtime.Store(rt.engine)
        try:
            memories = rt.memories
            if self.limits.memory is not None and memories is None:
                store.set_limits(memory_size=self.limits.memory)  # no creator: wasmtime's cap
            if self._compiled.uses_wasi:
                store.set_wasi(self._wasi_config())
            store.set_fuel(self._fuel)
            rt.ticker.ensure_started()
            store.set_epoch_deadline(rt.ticker.ticks_until(time.monotonic() + self.limits.timeout))
            try:
                if memories is None:
                    instance = self._compiled.pre.instantiate(store)
                else:
                    with memories.creating(self.limits.memory, self._refused_grow):
                        instance = self._compiled.pre.instantiate(store)
            except wasmtime.Trap as exc:
                raise PluginActivationError(
                    f"{self._plugin_id}: the module's start function trapped: {first_line(exc)}",
                    plugin_id=self._plugin_id,
                    phase="activate",
                ) from None
            except wasmtime.WasmtimeError as exc:
                text = first_line(exc)
                hint = ""
                if "memory" in text and self.limits.memory is not None:
                    hint = (
                        f" (the memory limit is {format_bytes(self.limits.memory)}; raise "
                        "limits.memory or shrink the module's initial memory)"
                    )
                raise PluginActivationError(
                    f"{self._plugin_id}: cannot instantiate: {text}{hint}",
                    plugin_id=self._plugin_id,
                    phase="activate",
                ) from None
        except BaseException:
            store.close()
            raise
        exports = instance.exports(store)
        ctx = _ffi.context_address(store)
        live = _Live(store, ctx, instance)
        memory = exports[abi.MEMORY]
        live.keep.append(memory)
        live.memory_addr = ctypes.addressof(memory._memory)  # type: ignore[union-attr]
        for name, cell in self._cells.items():
            func = exports[name]
            live.keep.append(func)
            cell[0] = _ffi.func_address(func)
        self._live = live
        self._ctx = ctx
        rt._adopt(ctx, self)
        pending, self._pending_state = self._pending_state, None
        if pending is not None:  # an update hands over the old version's state: before activate
            try:
                out = self._call_json_locked(
                    abi.IMPORT_STATE, abi.encode_json(pending).encode(), None, restart=False
                )
                if out is not None:
                    abi.decode_envelope(out, what=self._what(abi.IMPORT_STATE))
            except PlughostError as exc:
                self._drop_store()
                raise PluginActivationError(
                    f"{self._plugin_id}: {abi.IMPORT_STATE} refused the state of "
                    f"{pending['from_version'] or 'the previous version'}: {exc.message}",
                    plugin_id=self._plugin_id,
                    phase="activate",
                    details={"cause": exc.to_dict()},
                ) from exc
        if self._compiled.is_handler(abi.ACTIVATE):
            request = json.dumps(
                {
                    "plugin_id": self._plugin_id,
                    "config": dict(self._bindings.config() if self._bindings else {}),
                    "abi": abi.ABI_VERSION,
                },
                separators=(",", ":"),
            ).encode()
            try:
                out = self._call_json_locked(abi.ACTIVATE, request, None, restart=False)
                if out is not None:
                    abi.decode_envelope(out, what=self._what(abi.ACTIVATE))
            except PlughostError as exc:
                self._drop_store()
                raise PluginActivationError(
                    f"{self._plugin_id}: plughost_activate failed: {exc.message}",
                    plugin_id=self._plugin_id,
                    phase="activate",
                    details={"cause": exc.to_dict()},
                ) from exc

    def _refused_grow(self, size: int, asked: int) -> None:
        """The memory creator refused to grow our memory past the limit (any size)."""
        self._grow_refused = (size, asked)

    def _wasi_config(self) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        # no argv, no environment, no inherited stdio: stdout/stderr go to the rate-limited log
        assert self._dispatch is not None
        limiter = self._dispatch.limiter
        wasi.stdout_custom = lambda data: limiter.emit(logging.INFO, _decode(data))
        wasi.stderr_custom = lambda data: limiter.emit(logging.WARNING, _decode(data))
        for grant in self._bindings.fs if self._bindings else ():
            host = Path(grant.host_path)
            if not host.is_dir():
                raise PluginActivationError(
                    f"{self._plugin_id}: granted directory {str(host)!r} does not exist or is "
                    "not a directory; create it or remove the grant",
                    plugin_id=self._plugin_id,
                    phase="activate",
                )
            wasi.preopen_dir(str(host.resolve()), grant.guest_path, not grant.read_only)
        return wasi

    def _drop_store(self) -> None:
        live, self._live, self._ctx = self._live, None, None
        if live is None:
            return
        self._runtime._release(live.ctx)
        for cell in self._cells.values():
            cell[0] = 0
        live.keep.clear()
        live.store.close()

    def _recycle(self) -> None:
        """Throw the store away and start a fresh one, re-running activate (lock held)."""
        self._drop_store()
        self._restart_at = None
        if self._closed or self._bindings is None:
            return
        self.counters["restarts"] += 1
        try:
            self._instantiate()
            self._runtime._emit(self._plugin_id, "restarted", self._last_failure)
        except PlughostError as exc:
            self._failed = (
                exc
                if isinstance(exc, PluginError)
                else PluginError(exc.message, plugin_id=self._plugin_id)
            )
            log.error("[%s] could not restart the sandbox after a trap: %s", self._plugin_id, exc)

    def _revive(self) -> int:
        """No store: restart one if a crash left us waiting and the backoff is over (lock held).

        Returns the new store's context, or raises why the plugin cannot be called.
        """
        if self._closed or self._failed is not None or self._bindings is None:
            raise self._not_callable()
        if self._restart_at is not None:
            wait = self._restart_at - time.monotonic()
            if wait > 0:
                raise PluginUnavailable(
                    f"{self._plugin_id} crashed and restarts in {wait:.2f} s (backoff); "
                    f"last failure: {self._last_failure}",
                    plugin_id=self._plugin_id,
                    details={"retry_after": wait},
                )
        self._recycle()
        if self._ctx is None:
            raise self._not_callable()
        return self._ctx

    def _revive_if_due(self) -> bool:
        """Restart a crashed sandbox whose backoff is over (a probe should see it come back)."""
        if self._restart_at is None or self._restart_at > time.monotonic():
            return False
        if not self._lock.acquire(False):  # busy: never block the caller's event loop here
            return False
        try:
            if self._live is None and self._restart_at is not None:
                self._revive()
        except PlughostError:
            return False
        finally:
            self._lock.release()
        return self._live is not None

    # -- internals: the JSON call path ------------------------------------------------------------

    def _acquire(self) -> None:
        if not self._lock.acquire(False):
            self._wait_turn()

    def _call_json(self, name: str, data: bytes, timeout: float | None) -> bytes | None:
        """alloc + copy in + call + copy out + dealloc, under one fuel budget and deadline."""
        if len(data) > self.limits.max_message:
            raise ProtocolError(
                f"request for {self._what(name)} is {len(data)} bytes; the limit is "
                f"{self.limits.max_message} (limits.max_message)",
                plugin_id=self._plugin_id,
                code="protocol.size",
            )
        if not self._lock.acquire(False):
            self._wait_turn()
        try:
            return self._call_json_locked(name, data, timeout, restart=True)
        finally:
            self._lock.release()

    def _call_json_locked(
        self, name: str, data: bytes, timeout: float | None, *, restart: bool
    ) -> bytes | None:
        ctx = self._ctx
        if ctx is None:
            ctx = self._revive()
        live = self._live
        assert live is not None
        limits = self.limits
        seconds = limits.timeout if timeout is None else min(timeout, limits.timeout)
        deadline = time.monotonic() + seconds
        _ffi.set_fuel(ctx, self._fuel)
        _ffi.set_epoch_deadline(ctx, self._runtime.ticker.ticks_until(deadline))
        self._deadline = deadline
        self._grow_refused = None
        self.counters["calls"] += 1
        try:
            out = self._exchange(live, name, data, seconds)
        except PlughostError as exc:
            self._count_fuel(ctx)  # before the failure handling drops a trapped store
            self._after_failure(exc, restart=restart)
            raise
        self._count_fuel(ctx)
        return out

    def _count_fuel(self, ctx: int) -> None:
        """Add what the call that just ended used: fuel is refilled to ``_fuel`` before each."""
        left = _ffi.get_fuel(ctx, self._fuel_left)
        if left is not None and left <= self._fuel:
            self.counters["fuel_used"] += self._fuel - left

    def _after_failure(self, exc: PlughostError, *, restart: bool) -> None:
        """Count ``exc``; after a trap, drop the store and apply the restart policy."""
        self.counters["errors"] += 1
        if isinstance(exc, PluginTimeout):
            self.counters["timeouts"] += 1
        elif isinstance(exc, PluginCrashed):
            self.counters["crashes"] += 1
        if not getattr(exc, "_wasm_trapped", False):
            return  # the guest misbehaved at the ABI level but its store is intact
        self._drop_store()  # never run another call in a store that trapped
        self._last_failure = exc.message
        emit = self._runtime._emit
        emit(self._plugin_id, "crashed", exc.message, code=exc.code)
        if not restart:
            return
        supervisor = self._supervisor
        if supervisor is None:
            self._recycle()
            return
        decision = supervisor.record_crash(exc.message)
        if decision.quarantine:
            self._failed = PluginUnavailable(
                f"{self._plugin_id} is quarantined: {decision.reason}",
                plugin_id=self._plugin_id,
                details={"quarantined": True, "crashes": decision.crashes_in_window},
            )
            log.error("[%s] %s", self._plugin_id, decision.reason)
            emit(
                self._plugin_id, "quarantined", decision.reason, crashes=decision.crashes_in_window
            )
        elif decision.delay <= 0:
            self._recycle()
        else:  # restart lazily, on the first call after the backoff
            self._restart_at = time.monotonic() + decision.delay

    def _exchange(self, live: _Live, name: str, data: bytes, seconds: float) -> bytes | None:
        ctx, mem = live.ctx, live.memory_addr
        alloc_raw, alloc = self._invokers[abi.ALLOC]
        dealloc_raw, dealloc = self._invokers[abi.DEALLOC]
        raw, handler = self._invokers[name]
        n = len(data)
        ptr = alloc(ctx, self._cells[abi.ALLOC][0], n)
        if ptr is TRAPPED:
            raise self._trap_error(alloc_raw, abi.ALLOC, seconds)
        ptr &= 0xFFFFFFFF
        self._check_span(ctx, mem, ptr, n, f"alloc({n})", allocating=True)
        ctypes.memmove(_ffi.memory_base(ctx, mem) + ptr, data, n)
        result = handler(ctx, self._cells[name][0], ptr, n)
        if result is TRAPPED:
            raise self._trap_error(raw, name, seconds)
        out: bytes | None = None
        if result != 0:
            rptr, rlen = abi.unpack(result)
            if rlen > self.limits.max_message:
                raise ProtocolError(
                    f"{self._what(name)} returned a {format_bytes(rlen)} message; the limit is "
                    f"{format_bytes(self.limits.max_message)} (limits.max_message)",
                    plugin_id=self._plugin_id,
                    code="protocol.size",
                    details={"size": rlen},
                )
            self._check_span(ctx, mem, rptr, rlen, f"the result of {name}")
            out = ctypes.string_at(_ffi.memory_base(ctx, mem) + rptr, rlen)
            if dealloc(ctx, self._cells[abi.DEALLOC][0], rptr, rlen) is TRAPPED:
                raise self._trap_error(dealloc_raw, abi.DEALLOC, seconds)
        if dealloc(ctx, self._cells[abi.DEALLOC][0], ptr, n) is TRAPPED:
            raise self._trap_error(dealloc_raw, abi.DEALLOC, seconds)
        return out

    def _check_span(
        self, ctx: int, mem: int, ptr: int, length: int, what: str, *, allocating: bool = False
    ) -> None:
        size = int(_ffi.memory_size(ctx, mem))
        if (ptr == 0 and length and allocating) or ptr + length > size:
            if (
                allocating
                and self.limits.memory is not None
                and (
                    self._grow_refused is not None
                    or size + max(length, PAGE) > self.limits.memory
                )
            ):
                raise self._memory_exceeded(size)
            raise ProtocolError(
                f"{self._plugin_id}: {what} points at bytes {ptr}..{ptr + length}, outside its "
                f"{size}-byte linear memory (or alloc returned 0): the module breaks the ABI",
                plugin_id=self._plugin_id,
                code="protocol.abi",
            )

    # -- internals: host functions ----------------------------------------------------------------

    def _serve_host(self, op: str, ctx: int, ptr: int, length: int) -> int:
        """Run a JSON host function for the guest; return the packed response (0 = ok null)."""
        live = self._live
        dispatch = self._dispatch
        if live is None or dispatch is None:
            raise PluginUnavailable("host call on a store that is gone", plugin_id=self._plugin_id)
        me = threading.get_ident()
        previous, self._host_thread = self._host_thread, me
        try:
            try:
                if length > self.limits.max_message:
                    raise ProtocolError(
                        f"{op} request is {format_bytes(length)}; the limit is "
                        f"{format_bytes(self.limits.max_message)}",
                        plugin_id=self._plugin_id,
                        code="protocol.size",
                    )
                self._check_span(ctx, live.memory_addr, ptr, length, f"the {op} request")
                raw = ctypes.string_at(_ffi.memory_base(ctx, live.memory_addr) + ptr, length)
                value = dispatch.call(op, json.loads(raw))
                if value is None:
                    return 0
                body = abi.encode_ok(value)
            except PluginTimeout:
                raise  # the call's deadline passed while a service ran: the call fails
            except Exception as exc:  # the guest gets an error envelope, never a host trace
                if isinstance(exc, PermissionDenied):
                    log.info("[%s] denied %s: %s", self._plugin_id, op, exc.message)
                elif not isinstance(exc, (PlughostError, ValueError, TypeError, LookupError)):
                    log.exception("[%s] host service %s failed", self._plugin_id, op)
                body = abi.encode_error(exc)
            return self._write_guest(ctx, live, body)
        finally:
            self._host_thread = previous

    def _await_result(self, awaitable: Any) -> Any:
        """Wait for an async service's result on the event loop (we are on a worker thread)."""
        loop = self._loop
        on_loop = False
        with contextlib.suppress(RuntimeError):  # no running loop in this thread
            on_loop = asyncio.get_running_loop() is loop
        if loop is None or loop.is_closed() or on_loop:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise PluginUnavailable(
                "an asynchronous host service was reached from a synchronous call; call the "
                "plugin with `await instance.call(...)` (local_callable is not offered for it)",
                plugin_id=self._plugin_id,
            )

        async def run() -> Any:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        remaining = max(0.0, self._deadline - time.monotonic())
        try:
            return future.result(timeout=remaining)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise PluginTimeout(
                f"{self._plugin_id}: a host service did not answer before the call's deadline",
                plugin_id=self._plugin_id,
                details={"limit": "timeout"},
            ) from None

    def _serve_log(self, ctx: int, level: int, ptr: int, length: int) -> None:
        live, dispatch = self._live, self._dispatch
        if live is None or dispatch is None:
            return
        length = min(length, self.limits.max_message)
        self._check_span(ctx, live.memory_addr, ptr, length, "the log message")
        raw = ctypes.string_at(_ffi.memory_base(ctx, live.memory_addr) + ptr, length)
        dispatch.log(level, _decode(raw))

    def _write_guest(self, ctx: int, live: _Live, body: bytes) -> int:
        alloc_raw, alloc = self._invokers[abi.ALLOC]
        n = len(body)
        ptr = alloc(ctx, self._cells[abi.ALLOC][0], n)
        if ptr is TRAPPED:
            raise self._trap_error(alloc_raw, abi.ALLOC, self.limits.timeout)
        ptr &= 0xFFFFFFFF
        self._check_span(ctx, live.memory_addr, ptr, n, f"alloc({n})", allocating=True)
        ctypes.memmove(_ffi.memory_base(ctx, live.memory_addr) + ptr, body, n)
        return abi.pack(ptr, n)

    # -- internals: errors -----------------------------------------------------------------------

    def _trap_error(self, raw: _ffi.RawCall, name: str, seconds: float | None) -> PluginError:
        """Translate what the raw call left behind into the plughost error to raise."""
        parked = _ffi.take_python_exception()
        trap = _ffi.take_trap(raw.trap) if raw.trap.value else None
        err_ptr, raw.error[0] = raw.error[0], None
        error = _ffi.take_error(err_ptr) if err_ptr else None
        return trap_error(
            self._plugin_id,
            self._what(name),
            self.limits,
            seconds,
            trap=trap,
            error=error,
            parked=parked,
            memory_size=self.memory_bytes(),
            grow_refused=self._grow_refused,
        )

    def _memory_exceeded(self, size: int) -> PluginCrashed:
        asked = self._grow_refused[1] if self._grow_refused is not None else None
        return memory_exceeded(self._plugin_id, self.limits.memory or 0, size, asked=asked)

    def _not_callable(self) -> PluginError:
        if self._closed:
            return PluginUnavailable(
                f"{self._plugin_id} is closed; load it again to call it",
                plugin_id=self._plugin_id,
            )
        if self._failed is not None:
            if isinstance(self._failed, PluginUnavailable):  # quarantined: say so, as is
                return PluginUnavailable(
                    self._failed.message, plugin_id=self._plugin_id, details=self._failed.details
                )
            return PluginUnavailable(
                f"{self._plugin_id} failed and is not running: {self._failed.message}",
                plugin_id=self._plugin_id,
            )
        return PluginUnavailable(
            f"{self._plugin_id} is not active; start it before calling it",
            plugin_id=self._plugin_id,
        )

    def _wait_turn(self) -> None:
        """The lock is taken: refuse re-entrance from our own host call, else wait our turn."""
        if self._host_thread == threading.get_ident():
            raise PluginUnavailable(
                f"{self._plugin_id} is already running a call on this thread (a host function "
                "it called tried to call back into it); re-entrant calls are refused",
                plugin_id=self._plugin_id,
            )
        if not self._lock.acquire(timeout=self.limits.timeout * 2):
            raise PluginTimeout(
                f"{self._plugin_id} stayed busy with another call for {self.limits.timeout * 2} s",
                plugin_id=self._plugin_id,
            )

    def _ensure_open(self) -> None:
        if self._closed:
            raise PluginUnavailable(
                f"{self._plugin_id} is closed; load it again to use it", plugin_id=self._plugin_id
            )

    def _no_handler(self, target: str) -> PluginError:
        handlers = [h for h in self._compiled.handlers if not h.startswith("plughost_")]
        # the code every runtime uses for "no such target", so callers can tell it apart
        return PluginUnavailable(
            f"{self._plugin_id} has no handler export {target!r} with signature "
            f"(i32, i32) -> i64; handlers: {', '.join(handlers) or 'none'}",
            plugin_id=self._plugin_id,
            code="plugin.no_target",
        )

    def _what(self, name: str) -> str:
        return f"{self._plugin_id}:{name}"

    def _discover_exports(self) -> list[Export]:
        if self._compiled.is_handler(abi.EXPORTS):
            out = self._call_json_locked(abi.EXPORTS, b"{}", None, restart=False)
            doc = None if out is None else abi.decode_envelope(out, what=self._what(abi.EXPORTS))
            return parse_exports(doc, self._compiled, self._plugin_id)
        return declared_exports(self._declared_commands, self._compiled, self._plugin_id)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\n")
