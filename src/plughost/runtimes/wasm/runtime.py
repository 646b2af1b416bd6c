"""``WasmRuntime``: loads ``runtime = "wasm"`` plugins with wasmtime.

One ``Engine`` per runtime, configured with fuel metering and epoch interruption; one
``Linker`` holding the ``plughost`` host functions (and WASI), built once; one ``InstancePre``
per distinct module, built once; one ``Store`` per plugin instance. Host functions are defined
once for every store: each call finds its instance from the calling store's context address,
so no host function closes over a particular plugin (and no global registry exists: the map
belongs to this runtime and is emptied by :meth:`aclose`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core._manifest_checks import entry_problem
from plughost.core.contract import Capability
from plughost.errors import PlughostError, PluginLoadError, PluginUnavailable
from plughost.observability.health import Supervisor, SupervisorEvent

if TYPE_CHECKING:
    from plughost.core.manifest import Manifest

import wasmtime

from . import _ffi, abi
from .bindings import FsGrant, WasmBindings
from .cache import ModuleCache
from .compiled import CompiledPlugin, inspect_module
from .instance import WasmInstance
from .limits import WasmLimits
from .memory import MemoryCreator
from .memory import supported as memory_supported
from .ticker import EpochTicker

__all__ = ["BindingsFactory", "WasmRuntime", "create_runtime"]

log = logging.getLogger(__name__)


BindingsFactory = Callable[[Any, WasmInstance], WasmBindings]
"""Turns the context given to ``start`` (normally a PluginContext) into :class:`WasmBindings`."""


class _Default:
    """Marker for "use the default" where None is a meaningful choice."""


_DEFAULT = _Default()


def _default_supervisor_factory() -> Callable[[], Any] | None:
    return Supervisor  # the isolated runtimes share one backoff/quarantine policy


# Part of every cache key: change it whenever the Config below changes.
_ENGINE_TAG = "fuel1-epoch1-v1"


class WasmRuntime:
    """The ``wasm`` runtime (implements :class:`plughost.runtimes.base.Runtime`).

    :param cache_dir: where compiled modules are cached (``<cache_dir>/<digest>-...cwasm``);
        None disables the disk cache.
    :param defaults: limits used where the manifest sets none.
    :param bindings: builds :class:`WasmBindings` from the context passed to ``start``; the
        default understands a ``PluginContext`` (see :func:`bindings_from_context`).
    :param epoch_interval: seconds per epoch tick: the resolution of call deadlines.
    :param supervisor: makes one crash supervisor per instance (an object with
        ``record_crash(reason) -> decision`` where the decision has ``quarantine``, ``delay``,
        ``reason``, ``crashes_in_window``, and ``reenable()``), deciding backoff and quarantine
        after a trap. Default: ``plughost.observability.health.Supervisor`` (the policy the
        process runtime uses too); None restarts the sandbox at once, every time.
    :param on_event: called with a :class:`SupervisorEvent` after each crash, restart and
        quarantine (the host records a quarantine as the plugin's failure).
    """

    name = "wasm"
    enforces: frozenset[str] = frozenset({"timeout", "memory", "fuel", "output"})
    # a wasm handler is a call that returns: channels are served one call per step
    # (plughost.runtimes.stepchannels, docs/wasm-abi.md)
    capabilities: frozenset[Capability] = frozenset(Capability)

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return entry_problem(self.name, entry, str(root) if root is not None else None)

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        defaults: WasmLimits | None = None,
        bindings: BindingsFactory | None = None,
        epoch_interval: float = 0.005,
        supervisor: Callable[[], Any] | _Default | None = _DEFAULT,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        # the host allocates linear memories itself, to see every refused memory.grow
        self.memories = MemoryCreator() if memory_supported() else None
        if self.memories is not None:
            self.memories.install(config)
        self.engine = wasmtime.Engine(config)
        # the memory creator turns copy-on-write images off, which compiled artefacts record
        tag = _ENGINE_TAG + ("-hostmem" if self.memories is not None else "")
        self.cache = ModuleCache(cache_dir, self.engine, tag)
        self.defaults = defaults or WasmLimits()
        self.ticker = EpochTicker(self.engine, epoch_interval)
        self._bindings_factory = bindings or bindings_from_context
        self.on_event = on_event
        self._supervisor_factory = (
            _default_supervisor_factory() if isinstance(supervisor, _Default) else supervisor
        )
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        self._owners: dict[int, WasmInstance] = {}
        self._compiled: dict[str, CompiledPlugin] = {}
        self._instances: set[WasmInstance] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._define_host_functions()

    # -- Runtime -----------------------------------------------------------------------------

    async def load(self, manifest: Manifest, root: Path | None) -> WasmInstance:
        """Compile (through the cache) the manifest's ``entry`` module; return an instance."""
        if root is None:
            raise PluginLoadError(
                f"{manifest.id}: a wasm plugin needs its folder to find {manifest.entry!r}",
                plugin_id=manifest.id,
                phase="load",
            )
        limits = limits_from_manifest(getattr(manifest, "limits", None), self.defaults)
        provides = getattr(manifest, "provides", None)
        commands = tuple(getattr(provides, "commands", ()) or ())
        return self.load_file(
            manifest.id,
            _entry_path(manifest.id, root, manifest.entry),
            limits=limits,
            declared_commands=commands,
            root=root,
        )

    def load_file(
        self,
        plugin_id: str,
        path: Path,
        *,
        limits: WasmLimits | None = None,
        declared_commands: tuple[str, ...] = (),
        root: Path | None = None,
    ) -> WasmInstance:
        """Load a ``.wasm`` / ``.wat`` file as plugin ``plugin_id`` (plain inputs, no manifest)."""
        self._ensure_open()
        compiled = self.compile(path, plugin_id=plugin_id)
        instance = WasmInstance(
            self,
            compiled,
            plugin_id,
            limits or self.defaults,
            declared_commands=declared_commands,
            root=root,
        )
        with self._lock:
            self._instances.add(instance)
        return instance

    def compile(self, path: Path, *, plugin_id: str | None = None) -> CompiledPlugin:
        """Compile and pre-link ``path`` (cached on disk and in memory by content digest)."""
        self._ensure_open()
        try:
            source = Path(path).read_bytes()
        except OSError as exc:
            raise PluginLoadError(
                f"cannot read wasm module {str(path)!r}: {exc.strerror or exc}",
                plugin_id=plugin_id,
                phase="load",
            ) from None
        is_text = Path(path).suffix == ".wat"
        if not is_text and not source.startswith(b"\0asm"):
            raise PluginLoadError(
                f"{str(path)!r} is not a WebAssembly binary (no \\0asm header); the entry must "
                "be a .wasm module or a .wat text file",
                plugin_id=plugin_id,
                phase="load",
            )
        with self._lock:  # a second instance of the same module costs nothing
            known = self._compiled.get(self.cache.digest(source, is_text=is_text))
        if known is not None:
            return known
        try:
            result = self.cache.load(source, is_text=is_text, name=str(path))
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            raise PluginLoadError(
                f"{str(path)!r} does not compile: {str(exc).strip()}",
                plugin_id=plugin_id,
                phase="load",
            ) from None
        with self._lock:
            known = self._compiled.get(result.digest)
            if known is not None:
                result.module.close()
                return known
        functions, uses_wasi, host_imports = inspect_module(result.module, name=str(path))
        try:
            pre = self._linker.instantiate_pre(result.module)
        except wasmtime.WasmtimeError as exc:
            raise PluginLoadError(
                f"{str(path)!r} cannot be linked: {str(exc).strip()}",
                plugin_id=plugin_id,
                phase="load",
            ) from None
        compiled = CompiledPlugin(
            result.digest, result.module, pre, functions, uses_wasi, result.source, host_imports
        )
        with self._lock:
            return self._compiled.setdefault(result.digest, compiled)

    async def aclose(self) -> None:
        """Close every instance, stop the ticker, release modules; idempotent."""
        with self._lock:
            instances = list(self._instances)
        for instance in instances:  # async close: deactivate may need async host services
            try:
                await instance.close()
            except Exception:
                log.exception("closing wasm plugin %s failed", instance.plugin_id)
        self.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        if self._closed:
            return
        with self._lock:
            instances = list(self._instances)
        for instance in instances:
            try:
                instance.close_sync()
            except Exception:  # one plugin's failing deactivate must not leak the others
                log.exception("closing wasm plugin %s failed", instance.plugin_id)
        self.ticker.stop()
        with self._lock:
            compiled, self._compiled = list(self._compiled.values()), {}
            self._closed = True
        for item in compiled:
            item.close()
        self._linker.close()
        self.engine.close()  # last: every store, module and linker of this engine is gone

    # -- used by instances -------------------------------------------------------------------

    def _emit(self, plugin_id: str, kind: str, reason: str, **details: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(SupervisorEvent(plugin_id, kind, reason, details))
        except Exception:  # a listener must not break supervision
            log.exception("wasm supervisor listener failed")

    def new_supervisor(self) -> Any:
        """A fresh crash supervisor for one instance, or None (restart at once, always)."""
        return None if self._supervisor_factory is None else self._supervisor_factory()

    def bindings_for(self, context: Any, instance: WasmInstance) -> WasmBindings:
        """The :class:`WasmBindings` for ``instance`` from the context given to ``start``."""
        return self._bindings_factory(context, instance)

    def _adopt(self, ctx: int, instance: WasmInstance) -> None:
        self._owners[ctx] = instance

    def _release(self, ctx: int) -> None:
        self._owners.pop(ctx, None)

    def _forget(self, instance: WasmInstance) -> None:
        with self._lock:
            self._instances.discard(instance)

    def _ensure_open(self) -> None:
        if self._closed:
            raise PluginUnavailable("the wasm runtime is closed; create a new one")

    def _define_host_functions(self) -> None:
        owners = self._owners

        def owner(caller: Any) -> tuple[WasmInstance, int]:
            ctx = _ffi.context_address(caller)
            instance = owners.get(ctx)
            if instance is None:  # a store we do not know: refuse rather than guess
                raise PluginUnavailable("host function called from an unknown store")
            return instance, ctx

        def log_fn(caller: Any, level: int, ptr: int, length: int) -> None:
            instance, ctx = owner(caller)
            instance._serve_log(ctx, level, ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

        types = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64()}
        for name, (params, results) in abi.HOST_FUNCTIONS.items():
            ty = wasmtime.FuncType([types[p] for p in params], [types[r] for r in results])
            if name == "log":
                fn: Callable[..., Any] = log_fn
            else:

                def fn(caller: Any, ptr: int, length: int, _op: str = name) -> int:
                    instance, ctx = owner(caller)
                    return instance._serve_host(_op, ctx, ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

            self._linker.define_func(abi.HOST_MODULE, name, ty, fn, access_caller=True)

    def stats(self) -> Mapping[str, Any]:
        """Runtime-wide counters: cache hits/misses, modules, live instances, ticker state."""
        return {
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "modules": len(self._compiled),
            "instances": len(self._instances),
            "stores": len(self._owners),
            "ticker_running": self.ticker.running,
        }


def create_runtime(
    *, home: Path | None = None, on_event: Callable[[SupervisorEvent], None] | None = None
) -> WasmRuntime:
    """The host's default wasm runtime: compiled modules cached under ``<home>/cache/wasm``."""
    cache = Path(home) / "cache" / "wasm" if home is not None else None
    return WasmRuntime(cache_dir=cache, on_event=on_event)


def limits_from_manifest(limits: Any, defaults: WasmLimits) -> WasmLimits:
    """Manifest ``Limits`` (any object with timeout/memory/fuel/output) over ``defaults``."""
    if limits is None:
        return defaults

    def pick(name: str, default: Any) -> Any:
        value = getattr(limits, name, None)
        return default if value is None else value

    return WasmLimits(
        timeout=float(pick("timeout", defaults.timeout)),
        memory=pick("memory", defaults.memory),
        fuel=pick("fuel", defaults.fuel),
        output=int(pick("output", defaults.output)),
        max_message=defaults.max_message,
    )


def _entry_path(plugin_id: str, root: Path, entry: str) -> Path:
    base = Path(root).resolve()
    path = (base / entry).resolve()
    if not path.is_relative_to(base):
        raise PluginLoadError(
            f"{plugin_id}: entry {entry!r} points outside the plugin folder; name a .wasm or "
            ".wat file inside it",
            plugin_id=plugin_id,
            phase="load",
        )
    if path.suffix not in (".wasm", ".wat"):
        raise PluginLoadError(
            f"{plugin_id}: entry {entry!r} must be a .wasm or .wat file",
            plugin_id=plugin_id,
            phase="load",
        )
    return path


def bindings_from_context(context: Any, instance: WasmInstance) -> WasmBindings:
    """Default factory: the bindings of a ``PluginContext``-like object.

    The context's services answer the host functions through the host operations table
    (:mod:`plughost.runtimes.hostcalls`; an unset service answers the guest with a clear
    ``plugin.unavailable`` error, and without a ``permissions`` service everything checked is
    denied). For modules that import WASI, the ``fs:read:<dir>`` / ``fs:write:<dir>`` scopes of
    ``permissions.granted()`` become preopens at the same path, and ``data_dir`` is preopened
    writable at ``/data``.
    """
    if context is None:
        return WasmBindings()
    perms = _optional(context, "permissions")
    fs: list[FsGrant] = list(_optional(context, "wasi_dirs") or ())
    if instance._compiled.uses_wasi:
        fs.extend(_fs_grants(perms))
        # the plugin's own data directory is the one place it may always read and write
        data_dir = _optional(context, "data_dir")
        if data_dir is not None:
            fs.append(FsGrant(data_dir, "/data", read_only=False))
    return WasmBindings(context=context, fs=tuple(fs), logger=_optional(context, "logger"))


def _fs_grants(perms: Any) -> list[FsGrant]:
    granted = getattr(perms, "granted", None)
    if granted is None:
        return []
    out = []
    for scope in granted():
        kind, pattern = getattr(scope, "kind", ""), getattr(scope, "pattern", "")
        if getattr(scope, "deny", False) or kind not in ("fs:read", "fs:write"):
            continue
        if Path(pattern).is_dir():
            out.append(FsGrant(pattern, pattern, read_only=kind == "fs:read"))
    return out


def _optional(obj: Any, name: str) -> Any:
    """``obj.name`` or None; a PluginContext raises PluginUnavailable for unset services."""
    try:
        return getattr(obj, name, None)
    except PlughostError:
        return None
