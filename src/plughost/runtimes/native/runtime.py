"""The ``native`` runtime: plugins that are shared libraries implementing ``include/plughost.h``.

``entry`` names the library inside the plugin folder (``slack.so``, ``lib/libslack.dylib``); it
is looked up there and only there — never on ``PATH`` or the loader's search path — and a
symbolic link that leaves the folder is refused.

Isolation ``process`` (the default): a Python child runner loads the library and speaks the
process protocol (docs/protocol.md), so the process runtime's supervision (restarts, quarantine),
limits and confinement apply unchanged; a crash or a hang ends that child, never the host.
Isolation ``inprocess``: the library is loaded into the host's own process for the lowest
latency. It is for libraries the operator trusts — the library can then do anything the host can,
and neither limits nor crashes are contained — so it is the operator's choice, never the
manifest's: ``NativeRuntime(inprocess={"plugin-id"})`` or ``PLUGHOST_NATIVE_INPROCESS=id,id``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plughost.core._manifest_checks import entry_problem
from plughost.core.contract import Capability
from plughost.errors import PluginError, PluginLoadError
from plughost.runtimes.hostcalls import HostCalls
from plughost.runtimes.inprocess import InProcessInstance
from plughost.runtimes.native.library import ENV_LIBRARY, NativePlugin
from plughost.runtimes.process.launch import ProcessOptions, declares_network
from plughost.runtimes.process.runtime import ProcessRuntime

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.context import PluginContext
    from plughost.core.contract import Export
    from plughost.core.manifest import Manifest
    from plughost.observability.health import RestartPolicy, SupervisorEvent

__all__ = ["ENV_INPROCESS", "NativeInProcessInstance", "NativeRuntime", "create_runtime",
           "library_path"]

logger = logging.getLogger(__name__)

ENV_INPROCESS: Final = "PLUGHOST_NATIVE_INPROCESS"
"""Operator setting: comma-separated ids of native plugins trusted to run in the host process
(``*``: all of them)."""

_CHILD_ENTRY: Final = "plughost.runtimes.native._child:plugin"


def library_path(entry: str, root: Path | None) -> Path:
    """The library ``entry`` names, resolved inside the plugin folder ``root`` (never PATH)."""
    problem = entry_problem("native", entry, str(root) if root is not None else None)
    if problem is None and root is None:
        problem = "a native plugin needs its plugin folder; install it from a folder or archive"
    if problem is not None:
        raise PluginLoadError(f"`entry` does not fit the 'native' runtime: {problem}",
                              code="manifest.entry", details={"entry": entry})
    assert root is not None
    base = Path(root).resolve()
    path = (base / entry).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise PluginLoadError(
            f"native library {entry!r} resolves to {str(path)!r}, outside the plugin folder or "
            "not a regular file; ship the library itself inside the plugin folder",
            code="manifest.entry", details={"entry": entry})
    return path


class _ChildRuntime(ProcessRuntime):
    """The process runtime, starting the Python child runner with a native library.

    The library's path is read when the runner imports its entry, so a warm spare (or a forked
    runner) can be assigned a native plugin like a Python one: no interpreter start per load."""

    env_read_late = True

    def runner_entry(self, manifest: Manifest) -> str:
        return _CHILD_ENTRY

    def command(self, manifest: Manifest, root: Path) -> tuple[list[str], bool, dict[str, str]]:
        path = library_path(manifest.entry, root)
        launcher = ("from plughost.sdk.child import main; "
                    f"raise SystemExit(main([{_CHILD_ENTRY!r}]))")
        argv = [self.options.python, *self.options.python_flags, "-c", launcher]
        return argv, True, {ENV_LIBRARY: str(path)}


def _needs_loop(manifest: Manifest) -> bool:
    """Whether the plugin may ask for host operations that wait on the event loop (commands,
    HTTP): then its calls run off the loop's thread, which can wait for them."""
    perms = getattr(manifest, "permissions", ()) or ()
    return declares_network(manifest) or any(p.startswith("commands:") for p in perms)


class NativeInProcessInstance(InProcessInstance):
    """A trusted native library in the host's process: the in-process instance, with the
    library's host operations answered by the shared table."""

    __slots__ = ("_library", "_loop", "_off_loop")

    def __init__(self, manifest: Manifest, library: NativePlugin, root: Path | None) -> None:
        super().__init__(manifest.id, library, None, root)
        self._library = library
        self._off_loop = _needs_loop(manifest)
        self._loop: asyncio.AbstractEventLoop | None = None
        if not self._off_loop:  # channel steps run where its calls run: on the loop
            library.run_blocking = _inline  # type: ignore[method-assign]

    async def start(self, context: PluginContext) -> list[Export]:
        self._loop = asyncio.get_running_loop()
        calls = HostCalls(self.plugin_id, context, can_await=self._off_loop)
        self._library.bind(lambda method, params: self._host_op(calls, method, params))
        return list(await super().start(context))

    def _host_op(self, calls: HostCalls, method: str, params: dict[str, Any]) -> Any:
        result = calls.dispatch(method, params)
        if not inspect.isawaitable(result):
            return result
        loop = self._loop
        on_loop = loop is None or _running_loop() is loop
        if on_loop:
            if inspect.iscoroutine(result):
                result.close()
            raise PluginError(
                f"{method} waits on the host's event loop, which this call is running on; a "
                "native plugin that uses it declares the permission it needs in its manifest "
                "(its calls then run off the loop)", code="plugin.error")
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        return None if self._off_loop else super().local_callable(target)

    async def call(self, target: str, kwargs: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        if not self._off_loop:
            return await super().call(target, kwargs, timeout=timeout)
        fn = self._target(target)
        return await asyncio.to_thread(fn, **(kwargs or {}))

    async def deliver_event(self, target: str, event: Event) -> None:
        if not self._off_loop:
            return await super().deliver_event(target, event)
        await asyncio.to_thread(self._target(target), event)

    async def close(self) -> None:
        if not self._closed:
            self._library.shutdown()
        await super().close()

    def stats(self) -> Mapping[str, Any]:
        return {"isolation": "inprocess", "library": self._library.path.name}


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _awaited(value: Any) -> Any:
    return await value


class NativeRuntime:
    """Loads ``runtime = "native"`` plugins (see the module docstring).

    :param inprocess: ids of the plugins the operator trusts to run inside the host process
        (``"*"`` in it: all); every other native plugin runs in a supervised child process.
    :param options: the process runtime settings used for isolated plugins.
    :param policy: their restart policy.
    """

    name = "native"
    enforces: frozenset[str] = ProcessRuntime.enforces
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(
        self,
        *,
        inprocess: Collection[str] = (),
        options: ProcessOptions | None = None,
        policy: RestartPolicy | None = None,
        on_event: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        self.inprocess = frozenset(inprocess)
        self._children = _ChildRuntime(options=options, policy=policy, on_event=on_event)
        self._inprocess: set[NativeInProcessInstance] = set()

    @property
    def children(self) -> ProcessRuntime:
        """The process runtime that supervises the isolated plugins."""
        return self._children

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return entry_problem(self.name, entry, str(root) if root is not None else None)

    def trusted(self, plugin_id: str) -> bool:
        """Whether the operator lets ``plugin_id`` run inside the host process."""
        return "*" in self.inprocess or plugin_id in self.inprocess

    async def load(self, manifest: Manifest, root: Path | None) -> Any:
        path = library_path(manifest.entry, root)
        if not self.trusted(manifest.id):
            return await self._children.load(manifest, root)
        try:
            library = NativePlugin(path, plugin_id=manifest.id)
        except PluginError as exc:
            exc.plugin_id = manifest.id
            raise
        declared = sorted(manifest.limits.declared())
        if declared:
            logger.warning("native plugin %s runs in the host process (trusted): its limits %s "
                           "are not enforced", manifest.id, ", ".join(declared))
        instance = NativeInProcessInstance(manifest, library, root)
        self._inprocess.add(instance)
        return instance

    async def aclose(self) -> None:
        instances, self._inprocess = list(self._inprocess), set()
        for instance in instances:
            await instance.close()
        await self._children.aclose()


def create_runtime(home: Path | None = None,
                   on_event: Callable[[SupervisorEvent], None] | None = None) -> NativeRuntime:
    """Factory used by the host (see :data:`plughost.runtimes.base.BUILTIN_RUNTIMES`).

    Which plugins may run in the host process is read from ``$PLUGHOST_NATIVE_INPROCESS``."""
    trusted = [p.strip() for p in os.environ.get(ENV_INPROCESS, "").split(",") if p.strip()]
    options = ProcessOptions(data_root=home / "data" if home is not None else None)
    return NativeRuntime(inprocess=trusted, options=options, on_event=on_event)

