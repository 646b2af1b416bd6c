"""PluginHost: discover → resolve → load → activate, and back down again.

The host wires the core (manifests, resolver, lifecycle, registry) to the runtimes. Its API is
asynchronous; :class:`SyncPluginHost` is a facade for applications without an event loop.

    host = PluginHost(["./plugins"])
    report = await host.start()          # every failure is in the report, none is silent
    await host.call("hello", "greet", name="Ada")
    await host.aclose()

Failure policy: ``on_plugin_error`` decides what a plugin's failure means for the rest —
:func:`isolate` (the default: record it, the others keep working) or :func:`fail` (startup stops).
A per-plugin policy overrides the global one.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from plughost._version import __version__
from plughost.core import platforms
from plughost.core._gc import collector_paused
from plughost.core.bus import EventBus, PermissionChecker
from plughost.core.channels import ChannelRegistry
from plughost.core.commands import CommandRegistry
from plughost.core.communications import Communications
from plughost.core.configschema import check_config, effective_config
from plughost.core.context import PluginContext
from plughost.core.contract import (
    Capability,
    EnableListener,
    Export,
    Health,
    PluginInstance,
    Runtime,
    StateHandover,
    check_instance,
    missing_capabilities,
    needed_by_exports,
    needed_by_manifest,
    refuse,
)
from plughost.core.discovery import Discovered, DiscoveryCache, discover
from plughost.core.hooks import HookRegistry
from plughost.core.lifecycle import CONFIG_HINT, LifecycleEvent, LifecycleEvents, State, transition
from plughost.core.manifest import Manifest, load_manifest
from plughost.core.registry import PluginRecord, Registry
from plughost.core.resolver import resolve
from plughost.core.version import Version, VersionRange
from plughost.errors import (
    ConfigInvalid,
    DependentsExist,
    InstallError,
    ManifestError,
    OperationRefused,
    PlughostError,
    PluginActivationError,
    PluginError,
    PluginLoadError,
    PluginTimeout,
    PluginUnavailable,
    ReloadError,
    ResolutionError,
    error_context,
    extra_hint,
    missing_extras,
)
from plughost.observability.health import SupervisorEvent
from plughost.runtimes.base import BUILTIN_RUNTIMES, availability, create_runtime
from plughost.watch import Build, BuildStore, FolderWatcher

__all__ = [
    "ErrorPolicy",
    "HostExtension",
    "LoadOutcome",
    "LoadReport",
    "PluginHost",
    "ReloadResult",
    "SyncPluginHost",
    "fail",
    "failure_of",
    "isolate",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

HOST_VERSION = __version__
_HOST_VERSION = Version(HOST_VERSION)  # what a host gets by default, parsed once
_HUB_MADE_ONCE = threading.Lock()  # see PluginHost.comms

ErrorPolicy = Callable[[PluginRecord, PlughostError], None]


def _event_patterns(triggers: Iterable[str]) -> list[str]:
    """The topic patterns of the ``event:<pattern>`` activation triggers among ``triggers``."""
    return [t.removeprefix("event:") for t in triggers if t.startswith("event:")]


_NOT_TRIGGERS: Final = frozenset({"startup", "manual"})  # activation entries that wait on nothing

# Built-in runtimes every host has (they need no extra). Like the other built-in ones
# (runtimes.base.BUILTIN_RUNTIMES) each is created on first use by a manifest that asks for it:
# a host without wasmtime still starts, a wasm plugin's load error names the extra, and a host
# whose plugins all run in-process never builds the process runtime.
_ALWAYS_RUNTIMES = ("python", "process")


def isolate(record: PluginRecord, error: PlughostError) -> None:
    """Policy: record the failure and carry on; the other plugins keep working."""
    logger.warning("plugin %s failed in %s: %s", record.id, record.phase, error.message)


def fail(record: PluginRecord, error: PlughostError) -> None:
    """Policy: stop — re-raise the plugin's error to the caller of ``start``/``activate``."""
    raise error


_UNUSABLE = frozenset({State.FAILED, State.DISABLED, State.UNINSTALLED, State.INSTALLED})
_RESOLVED_AGAIN = frozenset({State.INSTALLED, State.RESOLVED, State.DEACTIVATED})
"""States of a plugin that a targeted resolve fails when it does not resolve (not running)."""

_POLICIES: dict[str, ErrorPolicy] = {"isolate": isolate, "fail": fail}

HINTS: dict[str, str] = {
    "manifest": "fix the manifest; `plughost check {path}` lists every problem",
    "resolve": "install or update the dependency named above, or relax the version range",
    "import": "check that `entry` names an importable module:attribute in the plugin folder",
    "activate": "the plugin's activate() raised; see the error and the plugin's log",
    "dependency": "fix the dependency that failed first; this plugin needs it",
    "supervise": "it crashed repeatedly and was quarantined; fix it, then enable it again",
    "config": CONFIG_HINT,
}


def _policy(value: str | ErrorPolicy) -> ErrorPolicy:
    if callable(value):
        return value
    try:
        return _POLICIES[value]
    except KeyError:
        raise ValueError(
            f"unknown error policy {value!r}; use 'isolate', 'fail' or a callable"
        ) from None


class HostExtension(Protocol):
    """Something that attaches to the host's lifecycle (communication, services, metrics).

    Every method is optional; the host calls the ones an extension defines.
    """

    def prepare_context(self, record: PluginRecord, context: PluginContext) -> None: ...

    async def on_activated(self, record: PluginRecord, exports: tuple[Export, ...]) -> None: ...

    async def on_deactivated(self, record: PluginRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """What happened to one plugin during ``start``."""

    plugin_id: str
    state: State
    location: str | None = None
    phase: str | None = None
    error: PlughostError | None = None
    hint: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No failure. A plugin waiting for its configuration (``needs-config``) is not a
        failure: ``error`` then says what to set."""
        return self.error is None or self.state is State.NEEDS_CONFIG

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "state": self.state.value,
            "ok": self.ok,
            "location": self.location,
            "phase": self.phase,
            "error": self.error.to_dict() if self.error else None,
            "hint": self.hint,
            "warnings": list(self.warnings),
        }


@dataclass(slots=True)
class LoadReport:
    """One outcome per plugin seen by ``start``; nothing fails silently."""

    outcomes: list[LoadOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[LoadOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def __getitem__(self, plugin_id: str) -> LoadOutcome:
        for outcome in self.outcomes:
            if outcome.plugin_id == plugin_id:
                return outcome
        raise KeyError(plugin_id)

    def __str__(self) -> str:
        waiting = sum(o.state is State.NEEDS_CONFIG for o in self.outcomes)
        lines = [f"{len(self.outcomes)} plugin(s), {len(self.failed)} failed"
                 + (f", {waiting} waiting for configuration" if waiting else "")]
        for o in self.outcomes:
            mark = "cfg" if o.state is State.NEEDS_CONFIG else "ok " if o.ok else "ERR"
            line = f"  {mark} {o.plugin_id:<30} {o.state.value}"
            if o.error is not None:
                line += f"  [{o.phase}] {o.error.code}: {o.error.message}"
                if o.hint:
                    line += f"\n      hint: {o.hint}"
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": self.seconds,
            "plugins": [o.to_dict() for o in self.outcomes],
        }


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one :meth:`PluginHost.reload` did: the versions, whether it switched (``ok``) or
    the old version kept serving (``error`` says why), and how long each part took."""

    plugin_id: str
    from_version: str
    to_version: str
    state: str
    ok: bool
    error: PlughostError | None
    seconds: float
    load_seconds: float = 0.0
    switch_seconds: float = 0.0
    swapped: bool = True
    """False when the plugin was not running: only its files were switched."""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id, "from_version": self.from_version,
            "to_version": self.to_version, "state": self.state, "ok": self.ok,
            "error": self.error.to_dict() if self.error is not None else None,
            "seconds": round(self.seconds, 6), "load_seconds": round(self.load_seconds, 6),
            "switch_seconds": round(self.switch_seconds, 6), "swapped": self.swapped,
            "warnings": list(self.warnings),
        }


def failure_of(record: PluginRecord, phase: str, *, suffix: str = "") -> PlughostError:
    """The error that left ``record`` failed (or not active) after ``phase``, as a
    :class:`PlughostError` to raise; ``suffix`` is added to its message."""
    error = record.error
    if isinstance(error, PlughostError):
        if suffix:
            error.message += suffix
            error.args = (error.message,)
        return error
    message = (f"{record.id} is {record.state.value} after {phase}"
               + (f": {error}" if error else "") + "." + suffix)
    return PluginActivationError(message, plugin_id=record.id, phase=phase)


def _as_error(exc: BaseException, record: PluginRecord, phase: str) -> PlughostError:
    if isinstance(exc, PlughostError):
        if exc.plugin_id is None:
            exc.plugin_id = record.id
        if exc.phase is None:
            exc.phase = phase
        return exc
    wrapped = PluginError(
        f"{type(exc).__name__}: {exc}", plugin_id=record.id, phase=phase, code=f"plugin.{phase}"
    )
    wrapped.__cause__ = exc
    return wrapped


class PluginHost:
    """The embeddable plugin host.

    :param plugin_dirs: folders holding plugin folders (each with ``plugin.toml`` or
        ``manifest.json``); a folder that is itself a plugin is accepted too.
    :param home: the plughost home (private data directories, discovery cache). Optional for
        embedding; without it plugins get no ``ctx.data_dir``.
    :param entry_points: also discover installed distributions' ``plughost.plugins`` entry points.
    :param runtimes: runtimes to use, keyed by their ``name``; the in-process Python runtime is
        always available unless replaced.
    :param on_plugin_error: ``"isolate"`` (default), ``"fail"`` or a callable policy.
    :param error_policies: per-plugin policies overriding ``on_plugin_error``.
    :param max_concurrency: how many independent plugins are activated at once.
    :param config: operator configuration per plugin id (merged over the manifest defaults).
    :param disabled: plugin ids that are not loaded (kept, shown as ``disabled``).
    :param discovery_cache: keep validated manifests in ``<home>/cache/discovery.json``.
    :param host_version: the version plugins' ``host`` ranges are checked against.
    :param watch: hot reload: watch the plugin folders and reload a plugin when its files
        change (needs the ``config`` extra for ``watchfiles``). Plugins then run from
        content-addressed copies of their folders (``<home>/builds``, or a temporary directory
        without ``home``), so a broken save is rolled back to the last good build.
    :param debounce: seconds without a change that end a burst of saves (``watch``).
    :param keep_builds: how many good builds of each watched plugin are kept for rollback.
    :param load_timeout: seconds a plugin may take to load (import, spawn, compile) and, again,
        to activate; one that takes longer fails alone (``plugin.timeout``) instead of holding
        up the host's start. ``None``: no bound. (A Python plugin that blocks the event loop
        in synchronous code cannot be interrupted: run untrusted code out of process.)
    """

    def __init__(
        self,
        plugin_dirs: Iterable[str | Path] = (),
        *,
        home: str | Path | None = None,
        entry_points: bool = False,
        runtimes: Iterable[Runtime] | None = None,
        on_plugin_error: str | ErrorPolicy = "isolate",
        error_policies: Mapping[str, str | ErrorPolicy] | None = None,
        max_concurrency: int = 8,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        disabled: Iterable[str] = (),
        discovery_cache: bool = False,
        host_version: str | Version = HOST_VERSION,
        communications: Communications | None = None,
        permission_checker: PermissionChecker | None = None,
        watch: bool = False,
        debounce: float = 0.2,
        keep_builds: int = 5,
        load_timeout: float | None = 30.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if load_timeout is not None and load_timeout <= 0:
            raise ValueError("load_timeout must be a positive number of seconds, or None")
        self.load_timeout = load_timeout
        if debounce < 0:
            raise ValueError("debounce must be zero or more seconds")
        self.plugin_dirs = [d if isinstance(d, Path) else Path(d) for d in plugin_dirs]
        self.home = Path(home) if home is not None and not isinstance(home, Path) else home
        self.entry_points = entry_points
        self.host_version = (host_version if isinstance(host_version, Version)
                             else _HOST_VERSION if host_version == HOST_VERSION
                             else Version(str(host_version)))
        self.registry = Registry()
        self.lifecycle = LifecycleEvents()
        self._ran_as: dict[str, Manifest] = {}  # plugin id -> the alternative it runs as
        self.problems: list[Discovered] = []
        """Plugins found but not registered (invalid manifest, duplicate id)."""
        self._runtimes: dict[str, Runtime] = {}  # created on first use (runtime_for)
        for runtime in runtimes or ():
            self._runtimes[runtime.name] = runtime
        self._policy = _policy(on_plugin_error)
        self._policies = {k: _policy(v) for k, v in (error_policies or {}).items()}
        self._max_concurrency = max_concurrency
        self._config = {k: dict(v) for k, v in (config or {}).items()}
        self._disabled = set(disabled)
        self._cache = (
            # (a string: joining Paths is a tenth of setting up a host)
            DiscoveryCache(f"{self.home}{os.sep}cache{os.sep}discovery.json")
            if discovery_cache and self.home is not None
            else None
        )
        self._extensions: list[Any] = []
        self._releasing: dict[str, asyncio.Task[None]] = {}  # quarantined plugins being released
        self._enabling: set[str] = set()  # enabled by the operator; told once active again
        self._locks: dict[str, asyncio.Lock] = {}
        #: The load order of what is resolved: id -> its rank, increasing along the order, so
        #: ordering a few plugins (:meth:`_ordered`) costs those plugins, not the order.
        self._order: dict[str, int] = {}
        self._ranks = itertools.count()
        self._activation_index: dict[str, list[str]] = {}
        self._triggers_of: dict[str, list[str]] = {}  # plugin id -> its indexed triggers
        self._closed = False
        # Hot reload: calls wait at a plugin's gate while it switches; in-flight direct calls
        # are counted so the old version is drained before it stops.
        self._reload_gates: dict[str, asyncio.Event] = {}
        self._reload_locks: dict[str, asyncio.Lock] = {}
        self._inflight: dict[str, int] = {}
        self._drained: dict[str, asyncio.Event] = {}
        self._reload_listeners: list[Callable[[ReloadResult], Any]] = []
        self.watch = watch
        self.debounce = debounce
        self._keep_builds = keep_builds
        self._build_store: BuildStore | None = None
        self._watcher: FolderWatcher | None = None
        self._sources: dict[str, Path] = {}  # watched plugin id -> the folder being edited
        self._current_build: dict[str, Build] = {}
        # Extension points, events, commands, channels (:attr:`comms`): registered from each
        # plugin's exports on activation, removed on deactivation; lifecycle changes are
        # published on the bus. Made at first use: a host that discovers and resolves only
        # (a listing, a check) never needs them.
        self._comms: Communications | None = None
        self._permission_checker = permission_checker
        if communications is not None:
            self._attach(communications)

    # ----------------------------------------------------------------- wiring

    @property
    def comms(self) -> Communications:
        """The host's extension points, events, commands and channels (:attr:`hooks`,
        :attr:`bus`, :attr:`commands`, :attr:`channels`), made at first use."""
        comms = self._comms
        if comms is None:
            with _HUB_MADE_ONCE:  # two threads asking first still get one hub
                comms = self._comms
                if comms is None:
                    comms = self._attach(Communications())
        return comms

    def _attach(self, comms: Communications) -> Communications:
        """Make ``comms`` this host's: the first extension (every plugin is activated through
        a context made by :meth:`_make_context`, which asks for :attr:`comms` first, so no
        plugin ever ran without it) and the first to hear of lifecycle changes, whenever it
        is made; resolving lazy plugins, and watching the event triggers indexed so far."""
        self._comms = comms
        if self._permission_checker is not None:
            comms.set_permission_checker(self._permission_checker)
        self._extensions.insert(0, comms)
        self.lifecycle.subscribe(comms.publish_lifecycle, wants=comms.lifecycle_wanted,
                                 first=True)
        comms.set_lazy_resolver(self._activate_for_command)
        comms.hooks.set_lazy_resolver(self._activate_for_extension)
        comms.set_event_triggers(
            _event_patterns(self._activation_index),
            needed=self._asleep_for_event, activate=self._activate_for_event)
        return comms

    def add_runtime(self, runtime: Runtime) -> Callable[[], None]:
        """Serve manifests whose ``runtime`` is ``runtime.name``; returns the undo."""
        previous = self._runtimes.get(runtime.name)
        self._runtimes[runtime.name] = runtime

        def undo() -> None:
            if previous is None:
                self._runtimes.pop(runtime.name, None)
            else:
                self._runtimes[runtime.name] = previous

        return undo

    def runtime_availability(self) -> dict[str, str | None]:
        """Each runtime this host knows (built in or registered) → ``None`` when it can run
        here, else why not (naming the extra to install): :func:`runtimes.base.availability`."""
        return availability(self._runtimes)

    def add_extension(self, extension: Any) -> Callable[[], None]:
        """Attach a :class:`HostExtension`; returns the undo."""
        self._extensions.append(extension)

        def undo() -> None:
            if extension in self._extensions:
                self._extensions.remove(extension)

        return undo

    def _runtime_names(self) -> list[str]:
        """The runtimes this host has: those created or registered, and the ones it always
        has (created on first use)."""
        return sorted({*_ALWAYS_RUNTIMES, *self._runtimes})

    def runtime_for(self, manifest: Manifest) -> Runtime:
        """The runtime serving ``manifest.runtime`` (a built-in one is created on first use)."""
        if manifest.runtime not in self._runtimes and manifest.runtime in BUILTIN_RUNTIMES:
            # ExtraNotInstalled names the extra; a quarantine reported by the runtime's
            # supervisor marks the plugin FAILED.
            self._runtimes[manifest.runtime] = create_runtime(
                manifest.runtime, home=self.home, on_event=self._on_supervisor_event
            )
        try:
            return self._runtimes[manifest.runtime]
        except KeyError:
            raise PluginUnavailable(
                f"No runtime {manifest.runtime!r} is configured in this host (available: "
                f"{', '.join(self._runtime_names())}). Install the extra that provides it or "
                "register the runtime with host.add_runtime().",
                plugin_id=manifest.id,
                phase="import",
                code="runtime.unavailable",
            ) from None

    # ----------------------------------------------------------------- state

    def _set_state(
        self,
        record: PluginRecord,
        new: State,
        *,
        reason: str | None = None,
        phase: str | None = None,
    ) -> None:
        old = record.state
        transition(old, new, plugin_id=record.id)
        record.state = new
        record.since = time.time()
        self.registry.note_state(record, old)
        if self.lifecycle.listening(new):
            self.lifecycle.publish(LifecycleEvent(record.id, old, new, record.since, reason, phase))

    def _set_state_in_bulk(self, record: PluginRecord, new: State, quiet: set[State],
                           reason: str | None = None) -> None:
        """:meth:`_set_state` for one of many records changed in a row (discovery,
        resolution): ``quiet`` (one set for the whole run, empty at first) holds the states
        nobody was found to listen to. Nothing runs between two changes of the run but the
        host's own bookkeeping, so that answer holds until an event is published (a listener
        may subscribe others); asking once instead of for each of ten thousand records."""
        if new not in quiet:
            if self.lifecycle.listening(new):
                quiet.clear()
                self._set_state(record, new, reason=reason)
                return
            quiet.add(new)
        old = record.state
        transition(old, new, plugin_id=record.id)
        record.state = new
        record.since = time.time()
        self.registry.note_state(record, old)

    def _on_supervisor_event(self, event: SupervisorEvent) -> None:
        """An isolated runtime quarantined a plugin: record it as FAILED with the reason."""
        if event.kind != "quarantined" or event.plugin_id not in self.registry:
            return
        record = self.registry.get(event.plugin_id)
        if record.state is not State.ACTIVE:
            return
        error = PluginUnavailable(event.reason, plugin_id=record.id, phase="supervise",
                                  details=dict(event.details))
        self._fail(record, error, "supervise")
        self._apply_policy(record, error)
        # Its exports go (extensions' on_deactivated) and its instance is released, so that
        # enable() starts it afresh; enable() waits for this to finish.
        if record.instance is not None:
            self._releasing[record.id] = asyncio.get_running_loop().create_task(
                self._release_quarantined(record, record.instance)
            )

    async def _release_quarantined(self, record: PluginRecord, instance: PluginInstance) -> None:
        for ext in reversed(self._extensions):
            hook = getattr(ext, "on_deactivated", None)
            if hook is not None:
                try:
                    await hook(record)
                except Exception:
                    logger.exception("extension cleanup failed for %s", record.id)
        if record.instance is instance:
            record.instance = None
        try:
            await instance.close()
        except Exception:
            logger.exception("closing quarantined %s failed", record.id)

    def _fail(self, record: PluginRecord, error: PlughostError, phase: str) -> None:
        record.error = error
        record.phase = phase
        extras = missing_extras(error)
        hint = extra_hint(*extras) if extras else HINTS.get(phase, "")
        record.hint = hint.format(path=record.root or record.id) if hint else None
        if record.state is not State.FAILED:
            self._set_state(record, State.FAILED, reason=error.message, phase=phase)

    def _apply_policy(self, record: PluginRecord, error: PlughostError) -> None:
        policy = self._policies.get(record.id, self._policy)
        policy(record, error)

    def _lock(self, plugin_id: str) -> asyncio.Lock:
        lock = self._locks.get(plugin_id)
        if lock is None:
            lock = self._locks[plugin_id] = asyncio.Lock()
        return lock

    # ----------------------------------------------------------------- discovery

    def discover(self) -> list[PluginRecord]:
        """Find plugins and register every valid one as ``installed`` (nothing is imported)."""
        self._check_open()
        with collector_paused():  # thousands of records that all stay alive (see core._gc)
            return self._register_found(
                discover(self.plugin_dirs, entry_points=self.entry_points, cache=self._cache))

    def _register_found(self, found: list[Discovered]) -> list[PluginRecord]:
        added: list[PluginRecord] = []
        quiet: set[State] = set()
        for item in found:
            if item.manifest is None:
                self.problems.append(item)
                continue
            if item.manifest.id in self.registry:
                existing = self.registry.get(item.manifest.id)
                error = OperationRefused(
                    f"Duplicate plugin id {item.manifest.id!r}: {item.location} and "
                    f"{existing.root or existing.source}. Remove or rename one of them.",
                    plugin_id=item.manifest.id,
                    phase="discover",
                    code="registry.duplicate",
                )
                self.problems.append(
                    Discovered(item.location, item.source, item.root, error=error)
                )
                continue
            disabled = item.manifest.id in self._disabled
            first = State.DISABLED if disabled else State.INSTALLED
            if first in quiet or not self.lifecycle.listening(first):
                # Nobody to tell (see _set_state_in_bulk): the record starts in its state,
                # without a move from DISCOVERED that nothing would see.
                quiet.add(first)
                record = PluginRecord(item.manifest, item.root, source=item.source,
                                      state=first)
                self.registry.add(record)
            else:
                record = PluginRecord(item.manifest, item.root, source=item.source)
                self.registry.add(record)
                self._set_state_in_bulk(record, first, quiet,
                                        reason="disabled by the operator" if disabled else None)
            added.append(record)
        return added

    def add(
        self,
        manifest: Manifest,
        root: Path | None = None,
        *,
        source: str = "installed",
        enabled: bool = True,
        failure: PlughostError | None = None,
        phase: str = "install",
    ) -> PluginRecord:
        """Register one plugin (installer, services, tests); call :meth:`resolve` next.

        It starts ``installed``; ``disabled`` when not ``enabled``; ``failed`` with ``failure``
        (in ``phase``) when it is known but cannot run (its files are missing, say). An id
        that is already registered is refused (``registry.duplicate``).
        """
        self._check_open()
        record = PluginRecord(manifest, root, source=source)
        self.registry.add(record)
        if failure is not None:
            self._fail(record, failure, phase)
        elif not enabled:
            self._disabled.add(manifest.id)
            self._set_state(record, State.DISABLED, reason="disabled by the operator")
        else:
            self._disabled.discard(manifest.id)
            self._set_state(record, State.INSTALLED)
        return record

    async def remove(self, plugin_id: str) -> PluginRecord:
        """Take a plugin out of the host: deactivate it (and its active dependents), unload
        it, enter ``uninstalled`` (emitted like every change) and forget it. Plugins that
        required it (directly or through others) no longer resolve: they end ``failed``,
        naming what is missing, and leave the load order and the activation index. Plugins
        that used it only optionally are activated again without it. Returns the removed
        record, which stays ``uninstalled``: :meth:`add` registers the plugin afresh.

        Only the plugins that required it are resolved again, not every registered one."""
        self._check_open()
        record = self.registry.get(plugin_id)
        active_dependents = self.dependents(plugin_id, states=[State.ACTIVE])
        affected = [plugin_id, *self.dependents(plugin_id)]
        releasing = self._releasing.pop(plugin_id, None)
        if releasing is not None:
            await releasing
        await self.unload(plugin_id, cascade=True)
        async with self._lock(plugin_id):
            self._set_state(record, State.UNINSTALLED, reason="removed from the host")
            self.registry.remove(plugin_id)
        self._disabled.discard(plugin_id)
        self._enabling.discard(plugin_id)
        self._locks.pop(plugin_id, None)
        if self._comms is not None:
            self._comms.counters.forget(plugin_id)
            self._comms.hooks.forget_places(plugin_id)
        self.resolve(only=affected)
        for dep in active_dependents:
            if dep in self.registry:
                with contextlib.suppress(PlughostError):
                    await self.activate(dep)
        return record

    async def replace(
        self, manifest: Manifest, root: Path | None, *, source: str = "installed",
        prove: bool = True,
    ) -> Callable[[], Awaitable[None]]:
        """Put ``manifest`` (files at ``root``) in place of the registered version of the same
        plugin, its state handed over; returns the undo.

        A running plugin's state is exported (:meth:`~plughost.core.contract.StateHandover.
        export_state`, JSON only); it and its active dependents are deactivated; the new
        version is loaded, given that state (``import_state``) before it activates, activated
        and health-checked; the dependents are activated again. If any step fails, the
        previous version is put back, given back its state, and the error is raised. A plugin
        that was not running is proved the same way unless it is lazy, then left as it was (a
        deactivated one deactivated). A disabled plugin only gets the new files; an unknown
        one is added. ``prove=False`` (where no plugin may run, e.g. a command-line tool
        beside no server) loads nothing: a plugin that is not loaded gets the new files and is
        resolved again; a loaded one is refused.

        The undo (for a caller's later step that fails, e.g. a database commit) puts the
        previous version back the same way, with the state the new one exports.
        """
        self._check_open()
        pid = manifest.id
        record = self.registry.find(pid)
        if record is None:
            added = self.add(manifest, root, source=source)
            self.resolve(only=[pid])

            async def forget() -> None:
                if self.registry.find(pid) is added:
                    await self.remove(pid)

            try:
                if prove and not manifest.is_lazy:
                    await self._prove(added, None, "", [])
            except BaseException:
                await forget()
                raise
            return forget
        refusing = [(other, rng) for other, rng in self._ranges_refusing(pid, manifest.version)
                    if self.registry.get(other).state not in _UNUSABLE]
        if refusing:
            names = [other for other, _ in refusing]
            raise ResolutionError(
                f"{pid} {manifest.version} would break plugins that depend on it: "
                f"{', '.join(names)} ({names[0]} needs {pid} {refusing[0][1]}). Update them "
                "first, or choose a version inside their ranges.",
                plugin_id=pid, phase="resolve", code="resolve.breaks_dependents",
                details={"dependents": names})
        previous = (record.manifest, record.root, record.source)
        if not prove and record.state not in (State.DISABLED, State.INSTALLED, State.RESOLVED,
                                              State.FAILED):
            raise OperationRefused(
                f"{pid} is {record.state.value} here; it can only be replaced with its state "
                "handed over (prove=True)", plugin_id=pid, code="registry.replace")
        if record.state is State.DISABLED or not prove:
            unchanged = record.state
            self._swap(record, manifest, root, source)

            async def swap_back() -> None:
                if record.state is unchanged or not prove:
                    self._swap(record, *previous)

            return swap_back
        old_state = record.state
        was_active = old_state is State.ACTIVE
        from_version = str(previous[0].version)
        dependents = self.dependents(pid, states=[State.ACTIVE]) if was_active else []
        state = await self._export_state(record) if was_active else None
        if was_active:
            await self.deactivate(pid, cascade=True)
        await self.unload(pid)
        self._swap(record, manifest, root, source)
        if was_active and Capability.STATE not in self.runtime_for(manifest).capabilities:
            record.warnings.append(
                f"the {manifest.runtime!r} runtime cannot hand state over: {pid} "
                f"{manifest.version} started without the state of {from_version}")

        async def restore(handover: Any, handover_from: str) -> None:
            with contextlib.suppress(PlughostError):
                await self.unload(pid, cascade=True)
            self._swap(record, *previous)
            if not was_active:
                return
            await self.load(pid)
            if handover is not None and record.state is State.LOADED:
                with contextlib.suppress(PlughostError):
                    await self._import_state(record, handover, handover_from)
            await self.activate(pid)
            for dep in dependents:
                with contextlib.suppress(PlughostError):
                    await self.activate(dep)

        try:
            if was_active or not manifest.is_lazy:
                await self._prove(record, state, from_version, dependents)
                if old_state is State.DEACTIVATED:
                    await self.deactivate(pid)  # the operator had deactivated it
        except BaseException:
            await restore(state, from_version)
            raise

        async def undo() -> None:
            if record.state is State.ACTIVE:
                await restore(await self._export_state(record), str(manifest.version))
            else:
                await restore(state, from_version)

        return undo

    def _swap(self, record: PluginRecord, manifest: Manifest, root: Path | None,
              source: str) -> None:
        """Point a record that is not loaded at other files (another version of the plugin)."""
        if manifest.id != record.id:
            raise OperationRefused(
                f"Cannot replace plugin {record.id!r} by {manifest.id!r}: a replacement must "
                "have the same id.", plugin_id=record.id, code="registry.replace")
        if record.state in (State.RESOLVED, State.FAILED):
            self._set_state(record, State.INSTALLED, reason=f"switching to {manifest.version}")
        record.manifest, record.root, record.source = manifest, root, source
        record.error = record.phase = record.hint = None
        record.warnings = []
        self.registry.add(record, replace=True)  # re-index: type, capabilities, tags may differ
        if record.state is State.INSTALLED:
            self.resolve(only=[record.id])

    async def _prove(self, record: PluginRecord, state: Any, from_version: str,
                     dependents: Iterable[str]) -> None:
        """Load, hand ``state`` over, activate and health-check a replacement, then activate
        the dependents it had; raise what failed."""
        pid = record.id
        await self.load(pid)
        loaded: State = record.state  # load() moved it on (mypy cannot see that)
        if loaded is not State.LOADED:
            raise failure_of(record, "import")
        if state is not None:
            await self._import_state(record, state, from_version)
        await self.activate(pid)
        active: State = record.state
        if active is not State.ACTIVE:
            raise failure_of(record, "activate")
        health = await record.instance.health()
        if not health.ok:
            raise InstallError(
                f"{pid} {record.manifest.version} activated but its health check failed"
                f"{': ' + health.detail if health.detail else ''}; the previous version "
                "was restored", code="install.health", plugin_id=pid)
        for dep in dependents:
            if (await self.activate(dep)).state is not State.ACTIVE:
                raise InstallError(
                    f"{dep}, which depends on {pid}, did not re-activate with "
                    f"{record.manifest.version}; the previous version was restored",
                    code="install.dependent", plugin_id=pid, details={"dependent": dep})

    def _state_handover(self, record: PluginRecord) -> StateHandover | None:
        """The instance's state handover, or None when its runtime has none."""
        if Capability.STATE not in self.runtime_for(self._running(record)).capabilities:
            return None
        instance = record.instance
        return instance if isinstance(instance, StateHandover) else None

    async def _export_state(self, record: PluginRecord) -> Any:
        """The running plugin's ``export_state()``, checked to be JSON (never pickled)."""
        handover = self._state_handover(record)
        if handover is None:
            return None
        try:
            state = await handover.export_state()
        except Exception as exc:
            raise InstallError(
                f"{record.id}: export_state() raised {type(exc).__name__}: {exc}; the update "
                "was refused and the running version keeps running", code="install.state",
                plugin_id=record.id) from exc
        try:
            return json.loads(json.dumps(state, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InstallError(
                f"{record.id}: export_state() returned something that is not JSON-serialisable "
                f"({exc}); state is handed over as JSON only. The update was refused and the "
                "running version keeps running", code="install.state", plugin_id=record.id
            ) from None

    async def _import_state(self, record: PluginRecord, state: Any, from_version: str) -> None:
        handover = self._state_handover(record)
        if handover is None:
            return
        try:
            await handover.import_state(state, from_version)
        except PlughostError:
            raise
        except Exception as exc:
            raise InstallError(
                f"{record.id} {record.manifest.version}: import_state() raised "
                f"{type(exc).__name__}: {exc}; the previous version was restored",
                code="install.state", plugin_id=record.id) from exc

    # ----------------------------------------------------------------- hot reload

    def on_reload(self, listener: Callable[[ReloadResult], Any]) -> Callable[[], None]:
        """Call ``listener(result)`` after every reload attempt (done or rolled back);
        returns the undo. The service records an audit entry per reload this way."""
        self._reload_listeners.append(listener)

        def undo() -> None:
            if listener in self._reload_listeners:
                self._reload_listeners.remove(listener)

        return undo

    def _reload_fits(self, record: PluginRecord, manifest: Manifest) -> None:
        """Refuse a new version whose id differs, which the host range excludes, whose own
        required dependencies are not satisfied by the registered versions, or which breaks a
        registered plugin's range on it."""
        pid = record.id
        if manifest.id != pid:
            raise ReloadError(
                f"the folder of {pid!r} now declares id {manifest.id!r}; a reload keeps the "
                "id. Put the old id back, or install the plugin under its new id",
                plugin_id=pid, code="reload.identity")
        if not manifest.host.contains(self.host_version, include_prerelease=True):
            raise ReloadError(
                f"{pid} {manifest.version} needs plughost {manifest.host}, this host is "
                f"{self.host_version}; the running version keeps running",
                plugin_id=pid, code="reload.breaks_dependents")
        for dep, wanted in manifest.dependencies.items():
            found = self.registry.find(dep)
            if found is None or not wanted.contains(found.manifest.version,
                                                    include_prerelease=True):
                have = f"{found.manifest.version} is registered" if found else "it is missing"
                raise ReloadError(
                    f"{pid} {manifest.version} needs {dep} {wanted}, but {have}; the "
                    "running version keeps running", plugin_id=pid,
                    code="reload.breaks_dependents", details={"dependency": dep})
        refusing = self._ranges_refusing(pid, manifest.version, optional=True)
        if refusing:
            other_id, needed = refusing[0]
            raise ReloadError(
                f"{other_id} needs {pid} {needed}; {manifest.version} would break it. "
                f"Keep the version inside that range (or update {other_id} first); the "
                "running version keeps running", plugin_id=pid,
                code="reload.breaks_dependents", details={"dependent": other_id})

    def _ranges_refusing(self, pid: str, version: Version, *, optional: bool = False,
                         prerelease: bool = True) -> list[tuple[str, VersionRange]]:
        """The registered plugins (by id) that require ``pid`` (or, with ``optional``, use it
        optionally) in a range ``version`` is outside, with that range; from the registry's
        index of users, so it costs them, not every registered plugin. ``prerelease=False``:
        by the resolver's rule, where a pre-release is outside a range that does not name
        one."""
        refusing = []
        for other_id in sorted(self.registry.users(pid) - {pid}):
            m = self.registry.get(other_id).manifest
            needed = m.dependencies.get(pid) or (
                m.optional_dependencies.get(pid) if optional else None)
            if needed is not None and not needed.contains(version,
                                                          include_prerelease=prerelease):
                refusing.append((other_id, needed))
        return refusing

    async def _drain(self, plugin_id: str, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until no direct call to ``plugin_id`` is in
        flight; return whether it drained."""
        if not self._inflight.get(plugin_id):
            return True
        drained = self._drained.setdefault(plugin_id, asyncio.Event())
        try:
            await asyncio.wait_for(drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def reload(
        self,
        plugin_id: str,
        root: str | Path | None = None,
        *,
        manifest: Manifest | None = None,
        drain_timeout: float = 5.0,
    ) -> ReloadResult:
        """Switch a plugin to the code at ``root`` (default: where it is loaded from) without
        dropping a call; on any failure the version that was serving keeps serving.

        The order: read and check the manifest (id, host range, dependencies, and every
        registered plugin's range on this one — a version that breaks a dependent is refused);
        **load the new version beside the running one** (import / spawn / compile: the slow
        part, while the old one still serves); then, with direct calls held at the plugin's
        gate (they wait, they do not fail) and commands waiting for the switch: drain the
        calls in flight (at most ``drain_timeout`` seconds), ``export_state()`` of the old
        version, stop it (its hooks, commands, subscriptions and channels are removed),
        ``import_state(state, from_version)`` into the new one, start it (it registers its
        exports), check its health; open the gate; close the old version. If importing,
        starting or the health check fails, the new version is closed and the old one is
        started again with the exports it had — it never stopped being the plugin's code.

        State crosses as JSON (see :doc:`state handover <runtimes>`): the new version receives
        the old one's ``export_state()`` and its version string, so it can migrate formats (a
        plugin may put a ``"state_version"`` key in its state for that).

        A plugin that is not active only gets the new files (checked, resolved; it loads them
        when it is next activated). Returns a :class:`ReloadResult`; raises
        :class:`~plughost.errors.ReloadError` (or the plugin's error) when refused or rolled
        back, after notifying :meth:`on_reload` listeners either way.
        """
        self._check_open()
        started = time.perf_counter()
        record = self.registry.get(plugin_id)
        where = Path(root) if root is not None else record.root
        if manifest is None:
            if where is None:
                raise ReloadError(f"{plugin_id} has no folder to reload from; give root=",
                                  plugin_id=plugin_id, code="reload.failed")
            manifest = load_manifest(where)
        lock = self._reload_locks.setdefault(plugin_id, asyncio.Lock())
        async with lock:
            from_version = str(record.manifest.version)
            try:
                self._reload_fits(record, manifest)
                if record.state is not State.ACTIVE:
                    await self.replace(manifest, where, source=record.source)
                    result = ReloadResult(plugin_id, from_version, str(manifest.version),
                                          record.state.value, True, None,
                                          time.perf_counter() - started, swapped=False)
                else:
                    result = await self._switch(record, manifest, where, from_version,
                                                started, drain_timeout)
            except PlughostError as exc:
                result = ReloadResult(plugin_id, from_version, str(manifest.version),
                                      record.state.value, False, exc,
                                      time.perf_counter() - started)
                self._notify_reload(result)
                raise
            self._notify_reload(result)
            return result

    def _notify_reload(self, result: ReloadResult) -> None:
        payload = result.to_dict()
        marked = {"reload_of": result.plugin_id}  # lets `plughost dev` leave these to its own
        if result.ok and result.from_version:
            logger.info("reloaded %s %s → %s in %.0f ms", result.plugin_id,
                        result.from_version, result.to_version, result.seconds * 1000,
                        extra=marked)
        elif result.ok:
            logger.info("added %s %s from a new folder in %.0f ms", result.plugin_id,
                        result.to_version, result.seconds * 1000, extra=marked)
        elif result.error is not None:
            logger.warning("%s of %s %s failed (%s: %s); %s",
                           "reload" if result.from_version else "adding", result.plugin_id,
                           result.to_version, result.error.code, result.error.message,
                           "the running version keeps serving" if result.from_version
                           else "nothing was added", extra=marked)
        record = self.registry.find(result.plugin_id)
        if record is not None and not result.ok and result.error is not None:
            record.warnings.append(f"reload to {result.to_version} failed: "
                                   f"{result.error.code}: {result.error.message}")
            del record.warnings[:-20]
        self.comms.bus.emit("plugin.lifecycle.reloaded" if result.ok
                            else "plugin.lifecycle.reload_failed", payload)
        for listener in list(self._reload_listeners):
            try:
                listener(result)
            except Exception:
                logger.exception("reload listener failed for %s", result.plugin_id)

    async def _switch(self, record: PluginRecord, manifest: Manifest, root: Path | None,
                      from_version: str, started: float, drain_timeout: float) -> ReloadResult:
        pid = record.id
        runtime = self.runtime_for(manifest)
        probe = PluginRecord(manifest, root, source=record.source)
        self._check_runtime(runtime, probe)
        with error_context(plugin_id=pid, phase="import"):
            new = await runtime.load(manifest, root)
        broken = check_instance(runtime, new)
        if broken:
            await new.close()
            raise PluginUnavailable(
                f"The {runtime.name!r} runtime declares {', '.join(broken)} but its instance "
                f"of {pid!r} does not implement it; this is a bug in that runtime.",
                plugin_id=pid, phase="import", code="runtime.contract")
        loaded = time.perf_counter()
        old = record.instance
        previous = (record.manifest, record.root, record.source)
        gate = self._reload_gates[pid] = asyncio.Event()
        warnings: list[str] = []
        try:
            if not await self._drain(pid, drain_timeout):
                warnings.append(f"calls still in flight after {drain_timeout}s were left to "
                                "the old version")
            try:
                state = await self._export_state(record)
            except BaseException:
                await new.close()
                raise
            await self._stop_instance(record)
            record.manifest, record.root = manifest, root
            record.instance = new
            self.registry.add(record, replace=True)
            try:
                if state is not None:
                    await self._import_state(record, state, from_version)
                context = self._make_context(record)
                exports = await self._start_instance(record, context)
                health = await new.health()
                if not health.ok:
                    raise ReloadError(
                        f"{pid} {manifest.version} started but its health check failed"
                        f"{': ' + health.detail if health.detail else ''}; {from_version} "
                        "keeps serving", plugin_id=pid, code="reload.health")
            except BaseException as exc:
                await self._stop_instance(record)
                with contextlib.suppress(Exception):
                    await new.close()
                record.manifest, record.root, record.source = previous
                record.instance = old
                self.registry.add(record, replace=True)
                try:
                    context = self._make_context(record)
                    record.exports = await self._start_instance(record, context)
                    record.context = context
                except Exception as again:
                    error = _as_error(again, record, "activate")
                    self._fail(record, error, "activate")
                    raise error from exc
                if isinstance(exc, Exception) and not isinstance(exc, PlughostError):
                    raise ReloadError(
                        f"{pid} {manifest.version} could not start: {type(exc).__name__}: "
                        f"{exc}; {from_version} keeps serving", plugin_id=pid,
                        code="reload.failed") from exc
                raise
            record.context, record.exports = context, exports
        finally:
            self._reload_gates.pop(pid, None)
            gate.set()
        switched = time.perf_counter()
        try:
            await old.close()
        except Exception:
            logger.exception("closing the previous version of %s failed", pid)
        return ReloadResult(pid, from_version, str(manifest.version), record.state.value, True,
                            None, time.perf_counter() - started, load_seconds=loaded - started,
                            switch_seconds=switched - loaded, warnings=tuple(warnings))

    # ----------------------------------------------------------------- watching

    @property
    def builds_store(self) -> BuildStore:
        """The content-addressed builds of watched plugins (created on first use)."""
        if self._build_store is None:
            root = self.home / "builds" if self.home is not None else None
            self._build_store = BuildStore(root, keep=self._keep_builds)
        return self._build_store

    def _adopt_builds(self) -> None:
        """Point every folder plugin at a build (a copy) of its folder: edits to the folder
        never change the running code."""
        for record in self.registry:
            if record.source != "directory" or record.root is None or record.id in self._sources:
                continue
            if record.state not in (State.INSTALLED, State.DISABLED):
                continue
            try:
                build = self.builds_store.snapshot(record.id, record.root)
            except (OSError, PlughostError) as exc:
                logger.warning("cannot copy %s for hot reload (%s); it runs from its folder",
                               record.id, exc)
                continue
            self._sources[record.id] = record.root
            self._current_build[record.id] = build
            record.root = build.path

    def source_of(self, plugin_id: str) -> Path | None:
        """The folder a watched plugin is edited in (``None`` when not watched)."""
        return self._sources.get(plugin_id)

    def builds(self, plugin_id: str) -> list[Build]:
        """The good builds kept for a watched plugin, newest first."""
        self.registry.get(plugin_id)
        return self.builds_store.history(plugin_id)

    async def start_watching(self) -> None:
        """Watch the plugin folders (``watch=True`` does this in :meth:`start`)."""
        self._check_open()
        self.watch = True
        self._adopt_builds()
        if self._watcher is None:
            self._watcher = FolderWatcher(self.plugin_dirs, self._on_folders_changed,
                                          debounce=self.debounce)
            await self._watcher.start()

    async def _on_folders_changed(self, roots: set[Path]) -> None:
        by_folder = {folder.resolve(): pid for pid, folder in self._sources.items()}
        for root in sorted(roots):
            pid = by_folder.get(root.resolve())
            with contextlib.suppress(PlughostError):
                if pid is None:
                    await self.add_source(root)
                else:
                    await self.reload_source(pid)

    async def add_source(self, folder: Path) -> PluginRecord:
        """Add a plugin folder that appeared in a watched folder while the host runs.

        The folder is copied to a build (as every watched plugin is), registered, resolved
        against what runs, and activated unless it is lazy; from then on saves reload it. A
        folder that cannot join — its manifest is invalid, its id is taken, its dependencies
        are missing, its activation fails — is reported (a ``reload_failed`` result naming
        the error) and leaves the host as it was: nothing registered, no build kept.
        """
        self._check_open()
        started = time.perf_counter()
        folder = Path(folder)
        manifest: Manifest | None = None
        build: Build | None = None
        try:
            manifest = load_manifest(folder)
            if manifest.id in self.registry:
                where = self.registry.get(manifest.id).root or self.registry.get(manifest.id).source
                raise OperationRefused(
                    f"Duplicate plugin id {manifest.id!r}: {folder} and {where}. Rename one of "
                    "them (the id in plugin.toml) to run both.",
                    plugin_id=manifest.id, phase="discover", code="registry.duplicate")
            build = self.builds_store.snapshot(manifest.id, folder)
            manifest = load_manifest(build.path)
            record = self.add(manifest, build.path, source="directory",
                              enabled=manifest.id not in self._disabled)
            self._sources[manifest.id] = folder
            self._current_build[manifest.id] = build
            try:
                self.resolve(only=[manifest.id])
                if record.state is State.FAILED:
                    raise failure_of(record, "resolve")
                if record.state is State.RESOLVED and not manifest.is_lazy:
                    activated = await self.activate(manifest.id)
                    if activated.state is not State.ACTIVE:
                        raise failure_of(activated, "activate")
            except PlughostError:
                self._sources.pop(manifest.id, None)
                self._current_build.pop(manifest.id, None)
                await self.remove(manifest.id)
                raise
        except (OSError, PlughostError) as exc:
            error = exc if isinstance(exc, PlughostError) else ReloadError(
                f"cannot read {folder}: {exc}", code="reload.busy")
            pid = manifest.id if manifest is not None else folder.name
            if build is not None:  # drop the failed copy, keep the good builds of earlier runs
                self.builds_store.prune(
                    pid, keep={b.digest for b in self.builds_store.history(pid)})
            self._notify_reload(ReloadResult(
                pid, "", str(manifest.version) if manifest is not None else "?", "absent", False,
                error, time.perf_counter() - started, swapped=False))
            raise error from None
        self.builds_store.mark_good(build, str(manifest.version))
        self._notify_reload(ReloadResult(
            manifest.id, "", str(manifest.version), record.state.value, True, None,
            time.perf_counter() - started, swapped=False))
        return record

    async def reload_source(self, plugin_id: str, *, attempts: int = 3,
                            backoff: float = 0.05) -> ReloadResult | None:
        """Reload a watched plugin from its folder: copy it to a build and
        :meth:`reload` to that; ``None`` when the files did not change. A transient failure
        (a file being written, a manifest caught half-saved) is retried ``attempts`` times
        with doubling ``backoff``; a good build is recorded for rollback, a failed one is
        deleted and the running version keeps serving."""
        source = self._sources.get(plugin_id)
        if source is None:
            raise ReloadError(f"{plugin_id} is not a watched plugin folder; reload it with "
                              "reload(plugin_id, root)", plugin_id=plugin_id,
                              code="reload.failed")
        store = self.builds_store
        delay = backoff
        for attempt in range(1, attempts + 1):
            build: Build | None = None
            try:
                build = store.snapshot(plugin_id, source)
                current = self._current_build.get(plugin_id)
                if current is not None and current.digest == build.digest:
                    return None
                manifest = load_manifest(build.path)
            except (OSError, ManifestError, ReloadError) as exc:
                if attempt < attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                error = exc if isinstance(exc, PlughostError) else ReloadError(
                    f"cannot read {source}: {exc}", plugin_id=plugin_id, code="reload.busy")
                record = self.registry.get(plugin_id)
                self._notify_reload(ReloadResult(
                    plugin_id, str(record.manifest.version), "?", record.state.value, False,
                    error, 0.0))
                self._prune_builds(plugin_id)
                raise error from None
            try:
                result = await self.reload(plugin_id, build.path, manifest=manifest)
            except BaseException:
                self._prune_builds(plugin_id)
                raise
            self._current_build[plugin_id] = build
            store.mark_good(build, str(manifest.version))
            return result
        return None  # pragma: no cover - the loop returns or raises

    def _prune_builds(self, plugin_id: str) -> None:
        keep = {b.digest for b in self.builds_store.history(plugin_id)}
        current = self._current_build.get(plugin_id)
        if current is not None:
            keep.add(current.digest)
        self.builds_store.prune(plugin_id, keep=keep)

    async def rollback_build(self, plugin_id: str, ref: str | None = None) -> ReloadResult:
        """Reload a watched plugin to a kept good build: ``ref`` is a digest prefix or a
        version (default: the build before the current one)."""
        build = self.builds_store.find(plugin_id, ref)
        result = await self.reload(plugin_id, build.path)
        self._current_build[plugin_id] = build
        self.builds_store.mark_good(build, result.to_version)
        return result

    # ----------------------------------------------------------------- resolution

    def resolve(self, only: Iterable[str] | None = None) -> list[str]:
        """Resolve every ``installed`` plugin; move them to ``resolved`` or ``failed``.

        Returns the load order of everything resolved (dependencies first). ``only``: just
        these plugins — newly added ones, or the dependents of one removed (and its id) —
        against what they need (their dependency closure): what adding, removing, enabling or
        replacing a plugin costs, however many are registered. One already in the order keeps
        its place while what it uses still comes before it; the others join its end; the rest
        of the order stays as it was. Where that would put a plugin after one that uses it, or
        a plugin that stays constrains the version of one resolved now with a range it is
        outside, everything is resolved again, as without ``only``.
        """
        self._check_open()
        usable = (State.INSTALLED, State.RESOLVED, State.LOADED, State.ACTIVE,
                  State.DEACTIVATED)
        if only is not None:
            return self._resolve_only(list(only), usable)
        with collector_paused():  # a state change and an index entry per plugin
            return self._resolve_all(usable)

    def _resolve_all(self, usable: tuple[State, ...]) -> list[str]:
        candidates = [r.manifest for r in self.registry if r.state in usable]
        resolution = resolve(candidates, host_version=self.host_version, partial=True)
        for pid, error in sorted(resolution.failed.items()):
            record = self.registry.get(pid)
            if record.state is State.INSTALLED:
                self._fail(record, error, "resolve")
        for pid, reason in resolution.skipped_optional.items():
            self.registry.get(pid).warnings.append(reason)
        resolved = [r for r in self.registry.records(resolution.order)
                    if r.state is State.INSTALLED]
        if self.lifecycle.listening(State.RESOLVED):
            quiet: set[State] = set()
            for record in resolved:
                self._set_state_in_bulk(record, State.RESOLVED, quiet)
        elif resolved:  # nobody to tell: one move for them all (see _set_state_in_bulk)
            transition(State.INSTALLED, State.RESOLVED)
            self.registry.move_all(resolved, State.INSTALLED, State.RESOLVED, time.time())
        self._order = dict(zip(resolution.order, self._ranks, strict=False))  # ranks: endless
        self._index_activation()
        return list(self._order)

    def _resolve_only(self, ids: list[str], usable: tuple[State, ...]) -> list[str]:
        closure: dict[str, Manifest] = {}
        pending = list(ids)
        while pending:
            record = self.registry.find(pending.pop())
            if record is None or record.id in closure or record.state not in usable:
                continue
            closure[record.id] = record.manifest
            pending.extend(record.manifest.dependencies)
            pending.extend(record.manifest.optional_dependencies)
        resolution = resolve(list(closure.values()), requested=[i for i in ids if i in closure],
                             host_version=self.host_version, partial=True)
        wanted = set(ids)
        order = self._order
        # Where the plugins resolved go in the load order: one named that is in it already
        # (enabled again, switched to other files) keeps its place while everything it uses
        # comes before it; the others join its end, dependencies first.
        fresh = {pid for pid in resolution.order if pid not in order}
        kept = {pid for pid in resolution.order
                if pid in wanted and pid in order and self._keeps_place(pid, fresh)}
        moving = [pid for pid in resolution.order
                  if pid not in kept and (pid in wanted or pid in fresh)]
        moved = set(moving)
        placed = [pid for pid in resolution.order if pid in kept or pid in moved]
        if self._needs_whole_order(wanted, kept, moved, placed):
            with collector_paused():
                return self._resolve_all(usable)
        for pid, error in sorted(resolution.failed.items()):
            record = self.registry.get(pid)
            # A plugin added that does not resolve fails; so does one that no longer does
            # (a plugin it requires was removed) while it is not running.
            if pid in wanted and record.state in _RESOLVED_AGAIN:
                self._fail(record, error, "resolve")
        for pid, reason in resolution.skipped_optional.items():
            if pid in wanted:
                self.registry.get(pid).warnings.append(reason)
        # A plugin removed and added again (an uninstall undone, a reinstall) goes back to
        # the end, its activation triggers indexed afresh; one gone from the registry, or
        # whose requirement went, leaves. Everything here costs the plugins named (and what
        # they need), not the plugins registered.
        emptied: list[str] = []
        for pid in wanted:
            if pid not in kept:
                order.pop(pid, None)
            for trigger in self._triggers_of.pop(pid, ()):
                kept_ids = [p for p in self._activation_index.get(trigger, ()) if p != pid]
                if kept_ids:
                    self._activation_index[trigger] = kept_ids
                else:
                    self._activation_index.pop(trigger, None)
                    emptied.append(trigger)
        for pid in resolution.order:
            record = self.registry.get(pid)
            if record.state is State.INSTALLED:
                self._set_state(record, State.RESOLVED)
        order.update(zip(moving, self._ranks, strict=False))
        gone = _event_patterns(t for t in emptied if t not in self._activation_index)
        if gone and self._comms is not None:
            self._comms.remove_event_triggers(gone)
        self._index_activation(placed)
        return list(order)

    def _keeps_place(self, pid: str, fresh: set[str]) -> bool:
        """Whether ``pid``, in the load order, may stay where it is: every plugin it uses
        that is in the order (or joins it now, at its end: ``fresh``) comes before it."""
        rank = self._order[pid]
        manifest = self.registry.get(pid).manifest
        for dep in itertools.chain(manifest.dependencies, manifest.optional_dependencies):
            if dep in fresh or self._order.get(dep, -1) > rank:
                return False
        return True

    def _needs_whole_order(self, wanted: set[str], kept: set[str], moved: set[str],
                           placed: list[str]) -> bool:
        """Whether resolving only ``wanted`` would leave the host wrong, so that everything
        must be resolved again (``placed``: the plugins it resolved, ``kept`` in their place
        or ``moved`` to the end of the load order): a plugin that stays in the order uses one
        that moves to its end (it would come after what it uses), or constrains the version
        of one resolved now with a range that version is outside, by the resolver's rule (a
        required one would run beside a version it refuses; an optional one would not be told
        it goes without)."""
        order = self._order

        def stays(user_id: str) -> bool:
            return (user_id in order and user_id not in moved
                    and (user_id not in wanted or user_id in kept)
                    and self.registry.get(user_id).state not in _UNUSABLE)

        for pid in placed:
            if pid in moved and any(stays(u) for u in self.registry.users(pid)):
                return True  # it would come after what it uses
            version = self.registry.get(pid).manifest.version
            if any(user_id not in wanted and stays(user_id) for user_id, _ in
                   self._ranges_refusing(pid, version, optional=True, prerelease=False)):
                return True
        return False

    def _index_activation(self, added: Iterable[str] | None = None) -> None:
        """Index the activation triggers of the plugins in the load order (``added``: only of
        these, put in the index at their place in the load order; the event topics watched
        grow by theirs only)."""
        index: dict[str, list[str]] = {} if added is None else self._activation_index
        if added is None:
            self._triggers_of = {}
        triggers_of = self._triggers_of
        rank = self._order
        placed = list(rank if added is None else added)

        def place(pid: str) -> float:
            return rank.get(pid, math.inf)

        for record in self.registry.records(placed):
            triggers = [t for t in record.manifest.activation if t not in _NOT_TRIGGERS]
            if not triggers:
                continue
            pid = record.id
            triggers_of[pid] = triggers
            for trigger in triggers:
                if added is None:
                    index.setdefault(trigger, []).append(pid)
                else:
                    bisect.insort(index.setdefault(trigger, []), pid, key=place)
        self._activation_index = index
        if self._comms is None:  # the triggers are watched once it is made (_attach)
            return
        if added is None:  # every trigger: the index's (in the order first met)
            self._comms.set_event_triggers(_event_patterns(index),
                                           needed=self._asleep_for_event,
                                           activate=self._activate_for_event)
            return
        new_events = _event_patterns(t for pid in placed for t in triggers_of.get(pid, ()))
        if new_events:
            self._comms.add_event_triggers(new_events, needed=self._asleep_for_event,
                                           activate=self._activate_for_event)

    def _asleep_for_event(self, pattern: str) -> bool:
        return self._asleep(f"event:{pattern}")

    async def _activate_for_command(self, name: str) -> list[str]:
        # A command missing because its plugin is switching versions: wait for the switch.
        for gate in list(self._reload_gates.values()):
            await gate.wait()
        return await self.activate_for(f"command:{name}")

    async def _activate_for_extension(self, name: str) -> list[str]:
        return await self.activate_for(f"extension:{name}")

    def _asleep(self, trigger: str) -> bool:
        return any(
            self.registry.get(pid).state in (State.RESOLVED, State.LOADED, State.DEACTIVATED)
            for pid in self._activation_index.get(trigger, ())
        )

    async def _activate_for_event(self, pattern: str, event: Any) -> None:
        activated = await self.activate_for(f"event:{pattern}")
        if activated:
            self.comms.bus.redeliver(event, set(activated))

    @property
    def hooks(self) -> HookRegistry:
        """The host's extension points (``host.comms.hooks``)."""
        return self.comms.hooks

    @property
    def bus(self) -> EventBus:
        """The host's event bus (``host.comms.bus``)."""
        return self.comms.bus

    @property
    def commands(self) -> CommandRegistry:
        """The host's commands (``host.comms.commands``)."""
        return self.comms.commands

    @property
    def channels(self) -> ChannelRegistry:
        """The host's channels (``host.comms.channels``)."""
        return self.comms.channels

    def activation_candidates(self, trigger: str) -> list[str]:
        """Plugins that declared ``trigger`` (``command:x``, ``event:y``, ``extension:z``)."""
        return list(self._activation_index.get(trigger, ()))

    async def activate_for(self, trigger: str) -> list[str]:
        """Activate every not-yet-active plugin that declared ``trigger``; return their ids."""
        activated = []
        for pid in self.activation_candidates(trigger):
            record = self.registry.get(pid)
            if record.state in (State.RESOLVED, State.LOADED, State.DEACTIVATED):
                await self.activate(pid)
                activated.append(pid)
        return activated

    def _deps(self, record: PluginRecord) -> list[str]:
        m = record.manifest
        deps = list(m.dependencies)
        deps += [d for d in m.optional_dependencies if d in self.registry]
        return sorted(d for d in deps if self.registry.find(d) is not None)

    def dependents(self, plugin_id: str, *, states: Iterable[State] | None = None) -> list[str]:
        """Plugins that need ``plugin_id`` (required dependencies, transitively).

        With ``states``, only plugins in those states count (and the chain runs through them).
        """
        if states is None:
            return self.registry.dependents(plugin_id)
        wanted = set(states)
        return self.registry.dependents(plugin_id, considered=lambda r: r.state in wanted)

    # ----------------------------------------------------------------- load / activate

    async def load(self, plugin_id: str) -> PluginRecord:
        """Load a resolved plugin (and its dependencies): import / spawn / compile."""
        self._check_open()
        record = self.registry.get(plugin_id)
        if record.state in (State.LOADED, State.ACTIVE, State.DEACTIVATED):
            return record
        self._require_usable(record)
        for dep in self._deps(record):
            if self.registry.get(dep).state not in _UNUSABLE:
                await self.load(dep)
        async with self._lock(plugin_id):
            if record.state is not State.RESOLVED:
                return record
            try:
                manifest, runtime = self._choose_runtime(record)
                self._check_runtime(runtime, record, manifest)
                with error_context(plugin_id=plugin_id, phase="import"):
                    async with self._bounded(plugin_id, "load", "import"):
                        instance = await runtime.load(manifest, record.root)
            except Exception as exc:
                error = _as_error(exc, record, "import")
                self._fail(record, error, "import")
                self._apply_policy(record, error)
                return record
            broken = check_instance(runtime, instance)
            if broken:
                await instance.close()
                error = PluginUnavailable(
                    f"The {runtime.name!r} runtime declares {', '.join(broken)} but its instance "
                    f"of {plugin_id!r} does not implement it; this is a bug in that runtime.",
                    plugin_id=plugin_id, phase="import", code="runtime.contract")
                self._fail(record, error, "import")
                self._apply_policy(record, error)
                return record
            record.instance = instance
            unenforced = sorted(record.manifest.limits.declared() - runtime.enforces)
            if unenforced:
                record.warnings.append(
                    f"the {runtime.name!r} runtime cannot enforce limits: "
                    f"{', '.join(unenforced)} (they are declared but not applied)"
                )
            self._set_state(record, State.LOADED)
        return record

    def _choose_runtime(self, record: PluginRecord) -> tuple[Manifest, Runtime]:
        """How to run ``record`` here: its manifest's own runtime/entry, or the first of its
        ``alternatives`` that fits this platform and whose runtime this host has (said in the
        plugin's warnings); none fitting fails the plugin alone (``runtime.platform``)."""
        m = record.manifest
        self._ran_as.pop(record.id, None)
        if not m.platforms and not m.alternatives:
            return m, self.runtime_for(m)

        extras: list[str] = []

        def unavailable(name: str) -> str | None:
            try:
                self.runtime_for(dataclasses.replace(m, runtime=name))
            except PlughostError as exc:
                extras.extend(missing_extras(exc))
                return exc.message
            return None

        choice = platforms.select(m, unavailable)
        if isinstance(choice, list):
            details: dict[str, Any] = {"platform": platforms.current()}
            if extras:
                details["extras"] = list(dict.fromkeys(extras))
                details["hint"] = extra_hint(*extras)
            raise PluginUnavailable(
                f"Plugin {m.id!r} has no way to run on {platforms.current()}: "
                f"{'; '.join(choice)}. Install the plugin's build for this platform (or the "
                "extra its runtime needs).", plugin_id=m.id, phase="import",
                code="runtime.platform", details=details)
        if choice.index or choice.skipped:
            skipped = f" ({'; '.join(choice.skipped)})" if choice.skipped else ""
            note = choice.describe() + skipped
            if note not in record.warnings:
                record.warnings.append(note)
        self._ran_as[record.id] = choice.manifest
        return choice.manifest, self.runtime_for(choice.manifest)

    def _running(self, record: PluginRecord) -> Manifest:
        """The manifest ``record`` was loaded with (an alternative's runtime/entry, if one)."""
        return self._ran_as.get(record.id, record.manifest)

    def _check_runtime(self, runtime: Runtime, record: PluginRecord,
                       manifest: Manifest | None = None) -> None:
        """Refuse, before anything is loaded, a plugin its runtime cannot serve: a bad ``entry``
        (each runtime checks its own), or a capability it needs that the runtime lacks."""
        m = manifest or record.manifest
        problem = runtime.check_entry(m.entry, record.root)
        if problem is not None:
            raise PluginLoadError(
                f"`entry` does not fit the {runtime.name!r} runtime: {problem}.",
                plugin_id=m.id, phase="import", code="manifest.entry",
                details={"entry": m.entry})
        missing = missing_capabilities(runtime, needed_by_manifest(m))
        if missing:
            raise refuse(runtime, m.id, missing, phase="import")

    def _require_usable(self, record: PluginRecord) -> None:
        if record.state in (State.DISABLED, State.FAILED, State.UNINSTALLED, State.INSTALLED):
            why = {
                State.DISABLED: "it is disabled; enable it first",
                State.FAILED: f"it failed in {record.phase}: "
                f"{getattr(record.error, 'message', record.error)}",
                State.UNINSTALLED: "it was uninstalled",
                State.INSTALLED: "its dependencies are not resolved; call resolve() first",
            }[record.state]
            raise PluginUnavailable(
                f"Plugin {record.id!r} cannot be used: {why}.", plugin_id=record.id
            )

    def _make_context(self, record: PluginRecord) -> PluginContext:
        m = record.manifest
        config = effective_config(m.config_schema, m.config_defaults, self._config.get(m.id))
        data_dir = self.home / "data" / m.id if self.home is not None else None
        context = PluginContext(m, config=config, data_dir=data_dir)
        _ = self.comms  # the first extension, made now if not yet (see _attach)
        for ext in self._extensions:
            prepare = getattr(ext, "prepare_context", None)
            if prepare is not None:
                prepare(record, context)
        # The service's rule (core.configschema), so an embedded host, a test host and
        # `plughost serve` refuse the same config; the plugin then waits in ``needs-config``
        # instead of failing inside its own activate().
        check_config(m.id, m.config_schema, context.config,
                     advice=HINTS["config"].format(id=m.id))
        return context

    async def activate(self, plugin_id: str) -> PluginRecord:
        """Activate a plugin, its dependencies first. Idempotent for an active plugin."""
        self._check_open()
        record = self.registry.get(plugin_id)
        if record.state is State.ACTIVE:
            return record
        if record.state is State.NEEDS_CONFIG:  # try again: the config may be valid now
            self._set_state(record, State.RESOLVED)
        self._require_usable(record)
        required = record.manifest.dependencies
        for dep in self._deps(record):
            dep_record = self.registry.get(dep)
            if dep_record.state not in _UNUSABLE:
                dep_record = await self.activate(dep)
            if dep_record.state is not State.ACTIVE and dep not in required:
                record.warnings.append(
                    f"optional dependency {dep!r} is {dep_record.state.value}; running without it"
                )
                continue
            if dep_record.state is not State.ACTIVE:
                error = PluginActivationError(
                    f"Dependency {dep!r} could not be activated "
                    f"({dep_record.state.value}); {plugin_id!r} needs it.",
                    plugin_id=plugin_id,
                    phase="dependency",
                    details={"dependency": dep},
                )
                self._fail(record, error, "dependency")
                self._apply_policy(record, error)
                return record
        await self.load(plugin_id)
        async with self._lock(plugin_id):
            if record.state not in (State.LOADED, State.DEACTIVATED):
                return record
            try:
                # Inside the try: an extension refusing the plugin (bad permission scope) fails
                # this plugin like any activation error; a configuration that is missing
                # required values is not a failure: the plugin waits in ``needs-config``.
                try:
                    context = self._make_context(record)
                except ConfigInvalid as exc:
                    if exc.what == "config schema":  # the plugin's own schema is broken
                        raise
                    await self._needs_config(record, exc)
                    return record
                exports = await self._start_instance(record, context)
            except Exception as exc:
                failure: PlughostError = _as_error(exc, record, "activate")
                if not isinstance(exc, PlughostError):
                    failure = PluginActivationError(
                        f"activate() raised {type(exc).__name__}: {exc}",
                        plugin_id=plugin_id,
                        phase="activate",
                    )
                    failure.__cause__ = exc
                await self._teardown_after_failed_activation(record)
                self._fail(record, failure, "config" if isinstance(exc, ConfigInvalid)
                           else "activate")
                self._apply_policy(record, failure)
                return record
            record.context = context
            record.exports = exports
            record.error = None
            self._set_state(record, State.ACTIVE)
        if plugin_id in self._enabling:
            self._enabling.discard(plugin_id)
            await self._tell_enabled(record, True)
        return record

    async def _needs_config(self, record: PluginRecord, error: ConfigInvalid) -> None:
        """Park ``record`` in ``needs-config``: its code is released, the error says what to
        set. Not a failure: the error policy is not applied."""
        await self._teardown_after_failed_activation(record)
        if error.plugin_id is None:
            error.plugin_id = record.id
        record.error = error
        record.phase = "config"
        record.hint = HINTS["config"].format(id=record.id)
        self._set_state(record, State.NEEDS_CONFIG, reason=error.message, phase="config")

    async def _start_instance(self, record: PluginRecord,
                              context: PluginContext) -> tuple[Export, ...]:
        """Start ``record.instance`` with ``context`` and register what it exports (the
        extensions' ``on_activated``); raise what failed. No state change."""
        with error_context(plugin_id=record.id, phase="activate"):
            async with self._bounded(record.id, "activate", "activate"):
                exports = tuple(await record.instance.start(context))
        runtime = self.runtime_for(self._running(record))
        missing = missing_capabilities(runtime, needed_by_exports(exports))
        if missing:
            with contextlib.suppress(Exception):  # it did start: let it deactivate
                await record.instance.stop()
            raise refuse(runtime, record.id, missing, phase="activate")
        for ext in self._extensions:
            hook = getattr(ext, "on_activated", None)
            if hook is not None:
                await hook(record, exports)
        return exports

    @contextlib.asynccontextmanager
    async def _bounded(self, plugin_id: str, what: str, phase: str) -> AsyncIterator[None]:
        """Bound one step of bringing a plugin up by :attr:`load_timeout`."""
        if self.load_timeout is None:
            yield
            return
        try:
            async with asyncio.timeout(self.load_timeout):
                yield
        except TimeoutError:
            raise PluginTimeout(
                f"Plugin {plugin_id!r} did not {what} within {self.load_timeout:g}s "
                "(load_timeout); it fails alone. Look at its log for what it waits on, or raise "
                "load_timeout if it is only slow.", plugin_id=plugin_id, phase=phase,
                details={"limit": "load_timeout", "seconds": self.load_timeout}) from None

    async def _unregister(self, record: PluginRecord) -> None:
        """The extensions' ``on_deactivated``: what the plugin registered goes."""
        for ext in reversed(self._extensions):
            hook = getattr(ext, "on_deactivated", None)
            if hook is not None:
                try:
                    await hook(record)
                except Exception:
                    logger.exception("extension cleanup failed for %s", record.id)

    async def _stop_instance(self, record: PluginRecord) -> None:
        """Remove what the running instance registered and stop it (it stays loaded)."""
        await self._unregister(record)
        try:
            await record.instance.stop()
        except Exception as exc:
            logger.warning("deactivate() of %s raised %s: %s", record.id, type(exc).__name__,
                           exc)
            record.warnings.append(f"deactivate() raised {type(exc).__name__}: {exc}")

    async def _tell_enabled(self, record: PluginRecord, enabled: bool) -> None:
        """The plugin's ``on_enable`` / ``on_disable``, where its runtime can deliver them
        (``docs/runtimes.md`` lists which can). A failure is a warning, not a refusal: the
        operator's decision stands."""
        instance = record.instance
        if not isinstance(instance, EnableListener) or Capability.ENABLE not in (
            self.runtime_for(self._running(record)).capabilities
        ):
            return
        try:
            await instance.enabled_changed(enabled)
        except Exception as exc:
            what = "on_enable" if enabled else "on_disable"
            logger.warning("%s() of %s raised %s: %s", what, record.id, type(exc).__name__, exc)
            record.warnings.append(f"{what}() raised {type(exc).__name__}: {exc}")

    async def _teardown_after_failed_activation(self, record: PluginRecord) -> None:
        await self._unregister(record)
        instance: PluginInstance | None = record.instance
        record.instance = None
        if instance is not None:
            try:
                await instance.close()
            except Exception:
                logger.exception("closing %s after a failed activation failed", record.id)

    async def ensure_active(self, plugin_id: str) -> PluginRecord:
        """Lazy activation: activate on first use, or raise why it cannot be used."""
        record = self.registry.get(plugin_id)
        if record.state is not State.ACTIVE:
            record = await self.activate(plugin_id)
            if record.state is not State.ACTIVE:
                self._require_usable(record)
                raise PluginUnavailable(
                    f"Plugin {plugin_id!r} is {record.state.value}, not active.",
                    plugin_id=plugin_id,
                )
        return record

    async def call(
        self, plugin_id: str, target: str, /, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``target`` on a plugin, activating it first if it is lazy. While the plugin
        is being reloaded the call waits for the switch and goes to the version that serves
        after it (it does not fail)."""
        gate = self._reload_gates.get(plugin_id)
        if gate is not None:
            await gate.wait()
        record = await self.ensure_active(plugin_id)
        self._inflight[plugin_id] = self._inflight.get(plugin_id, 0) + 1
        if timeout is None:
            timeout = record.manifest.limits.timeout
        monitors = self.comms.monitors
        finish = monitors.begin("call", f"{plugin_id}:{target}", {
            "plugin_id": plugin_id, "version": str(record.manifest.version),
            "target": target, "args": kwargs}) if monitors else None
        started = time.perf_counter()
        failed = True
        error: BaseException | None = None
        result: Any = None
        try:
            result = await record.instance.call(target, kwargs, timeout=timeout)
            failed = False
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            left = self._inflight[plugin_id] - 1
            if left:
                self._inflight[plugin_id] = left
            else:
                del self._inflight[plugin_id]
                drained = self._drained.pop(plugin_id, None)
                if drained is not None:
                    drained.set()
            self.comms.counters.record(plugin_id, "direct_calls", time.perf_counter() - started,
                                      failed)
            if finish is not None:
                finish(error, result)

    async def health(self, plugin_id: str) -> Health:
        """Ask a plugin whether it is healthy; one that is not active is not healthy (its
        state says why). Never raises for a known plugin."""
        record = self.registry.get(plugin_id)
        if record.instance is None or record.state is not State.ACTIVE:
            return Health(False, f"not active ({record.state.value})")
        try:
            health: Health = await record.instance.health()
        except Exception as exc:  # the contract says never raise; a broken runtime still answers
            return Health(False, f"health() raised {type(exc).__name__}: {exc}")
        return health

    def metrics(self, plugin_id: str) -> dict[str, Any]:
        """What the host counted for one plugin (calls, commands, hooks, events, channels,
        errors, busy seconds — the same for every runtime), its state and runtime, and what
        only its runtime can count (restarts, memory, ...)."""
        record = self.registry.get(plugin_id)
        data: dict[str, Any] = {}
        if record.instance is not None:
            data.update(record.instance.stats())
        data.update(self.comms.counters.snapshot(plugin_id))
        data["state"] = record.state.value
        data["runtime"] = self._running(record).runtime
        data["path"] = str(record.root) if record.root is not None else None
        return data

    # ----------------------------------------------------------------- deactivate / unload

    async def deactivate(self, plugin_id: str, *, cascade: bool = False) -> PluginRecord:
        """Deactivate a plugin. Active dependents are refused unless ``cascade``."""
        self._check_open()
        record = self.registry.get(plugin_id)
        if record.state is not State.ACTIVE:
            return record
        active_dependents = self.dependents(plugin_id, states=[State.ACTIVE])
        if active_dependents and not cascade:
            raise DependentsExist(
                f"Cannot deactivate {plugin_id!r}: active plugins depend on it: "
                f"{', '.join(active_dependents)}. Deactivate them first or pass cascade=True.",
                plugin_id=plugin_id,
                details={"dependents": active_dependents},
            )
        for dep in reversed(self._ordered(active_dependents)):
            await self.deactivate(dep, cascade=True)
        async with self._lock(plugin_id):
            if record.state is not State.ACTIVE:
                return record
            self._set_state(record, State.DEACTIVATED)
            await self._stop_instance(record)
            record.context = None
            record.exports = ()
        return record

    async def unload(self, plugin_id: str, *, cascade: bool = False) -> PluginRecord:
        """Deactivate if needed, release the code/process/sandbox, and go back to ``resolved``."""
        record = await self.deactivate(plugin_id, cascade=cascade)
        async with self._lock(plugin_id):
            if record.state not in (State.LOADED, State.DEACTIVATED):
                return record
            instance: PluginInstance | None = record.instance
            record.instance = None
            if instance is not None:
                await instance.close()
            self._set_state(record, State.RESOLVED)
        return record

    async def disable(self, plugin_id: str) -> PluginRecord:
        """Switch a plugin off (not loaded again until enabled). Refused while others need it."""
        record = self.registry.get(plugin_id)
        if record.state is State.DISABLED:
            return record
        needed_by = self.dependents(
            plugin_id,
            states=set(State) - {State.DISABLED, State.UNINSTALLED, State.FAILED},
        )
        if needed_by:
            raise DependentsExist(
                f"Cannot disable {plugin_id!r}: enabled plugins depend on it: "
                f"{', '.join(needed_by)}. Disable them first.",
                plugin_id=plugin_id,
                details={"dependents": needed_by},
            )
        self._enabling.discard(plugin_id)
        if record.state is State.ACTIVE:
            await self._tell_enabled(record, False)
        await self.unload(plugin_id)
        if record.state is State.RESOLVED:
            self._set_state(record, State.INSTALLED)
        self._set_state(record, State.DISABLED, reason="disabled by the operator")
        self._disabled.add(plugin_id)
        return record

    async def enable(self, plugin_id: str, *, activate: bool = True) -> PluginRecord:
        """Undo ``disable`` (or retry a failed plugin): resolve again and activate."""
        record = self.registry.get(plugin_id)
        if record.state not in (State.DISABLED, State.FAILED, State.NEEDS_CONFIG):
            return record
        releasing = self._releasing.pop(plugin_id, None)
        if releasing is not None:
            await releasing
        self._disabled.discard(plugin_id)
        if record.state is State.DISABLED:
            self._enabling.add(plugin_id)
        record.error = None
        record.phase = None
        record.hint = None
        self._set_state(record, State.INSTALLED)
        self.resolve(only=[plugin_id])
        # resolve() moved it on (mypy cannot see that through the attribute).
        state: State = record.state
        if activate and state is State.RESOLVED and not record.manifest.is_lazy:
            await self.activate(plugin_id)
        return record

    # ----------------------------------------------------------------- start / stop

    def _ordered(self, ids: Iterable[str]) -> list[str]:
        """``ids`` in load order (dependencies first); those not in it last, by id."""
        rank = self._order
        return sorted(ids, key=lambda pid: (rank.get(pid, float("inf")), pid))

    async def start(self) -> LoadReport:
        """Discover, resolve, and activate every ``startup`` plugin (dependencies first).

        Independent plugins activate concurrently, up to ``max_concurrency``. Lazy plugins stay
        ``resolved`` until first used. Returns a report with one outcome per plugin.
        """
        started = time.perf_counter()
        self.discover()
        if self.watch:
            self._adopt_builds()
        self.resolve()
        eager = {pid for pid in self._order if not self.registry.get(pid).manifest.is_lazy}
        needed: set[str] = set()
        stack = list(eager)
        while stack:
            pid = stack.pop()
            if pid in needed:
                continue
            needed.add(pid)
            stack.extend(self._deps(self.registry.get(pid)))
        await self._activate_many(self._ordered(needed))
        if self.watch:
            for pid, build in self._current_build.items():
                record = self.registry.find(pid)
                if record is not None and record.state is State.ACTIVE:
                    self.builds_store.mark_good(build, str(record.manifest.version))
            await self.start_watching()
        return self.report(seconds=time.perf_counter() - started)

    async def _activate_many(self, ordered: list[str]) -> None:
        """Activate in dependency levels; each level concurrently, bounded by the semaphore."""
        level: dict[str, int] = {}
        for pid in ordered:
            deps = [d for d in self._deps(self.registry.get(pid)) if d in level]
            level[pid] = 1 + max((level[d] for d in deps), default=-1)
        semaphore = asyncio.Semaphore(self._max_concurrency)

        async def one(pid: str) -> None:
            async with semaphore:
                await self.activate(pid)

        for depth in sorted(set(level.values())):
            batch = [pid for pid in ordered if level[pid] == depth]
            if len(batch) == 1:
                await one(batch[0])
                continue
            results = await asyncio.gather(*(one(pid) for pid in batch), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    def report(self, *, seconds: float = 0.0) -> LoadReport:
        """The current outcome of every plugin, plus the discovery problems."""
        outcomes = [
            LoadOutcome(
                plugin_id=(item.error.plugin_id if item.error and item.error.plugin_id else
                           Path(item.location).name),
                state=State.FAILED,
                location=item.location,
                phase=item.error.phase if item.error and item.error.phase else "manifest",
                error=item.error,
                hint=HINTS["manifest"].format(path=item.location),
            )
            for item in self.problems
        ]
        for record in sorted(self.registry, key=lambda r: r.id):
            error = record.error if isinstance(record.error, PlughostError) else None
            outcomes.append(
                LoadOutcome(
                    plugin_id=record.id,
                    state=record.state,
                    location=str(record.root) if record.root else record.source,
                    phase=record.phase if error else None,
                    error=error,
                    hint=record.hint if error else None,
                    warnings=tuple(record.warnings),
                )
            )
        return LoadReport(outcomes, seconds)

    async def aclose(self) -> None:
        """Deactivate every active plugin in reverse dependency order, unload all, close
        runtimes. Idempotent."""
        if self._closed:
            return
        if self._watcher is not None:
            await self._watcher.aclose()
            self._watcher = None
        for pid in reversed(self._ordered(r.id for r in self.registry)):
            record = self.registry.get(pid)
            try:
                if record.state is State.ACTIVE:
                    await self.deactivate(pid, cascade=True)
                if record.state in (State.LOADED, State.DEACTIVATED):
                    await self.unload(pid)
            except Exception:
                logger.exception("shutting down %s failed", pid)
        try:
            if self._comms is not None:
                await self._comms.aclose()
        except Exception:
            logger.exception("closing the communication layer failed")
        for runtime in self._runtimes.values():
            try:
                await runtime.aclose()
            except Exception:
                logger.exception("closing runtime %s failed", runtime.name)
        if self._build_store is not None:
            self._build_store.close()
        self._closed = True

    async def __aenter__(self) -> PluginHost:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise OperationRefused(
                "This PluginHost was closed; create a new one.", code="host.closed"
            )

    # ----------------------------------------------------------------- queries

    def get(self, plugin_id: str) -> PluginRecord:
        return self.registry.get(plugin_id)

    def list(
        self,
        *,
        type: str | None = None,
        state: State | str | None = None,
        extension_point: str | None = None,
        capability: str | None = None,
        tag: str | None = None,
    ) -> list[PluginRecord]:
        return self.registry.query(
            type=type,
            state=state,
            extension_point=extension_point,
            capability=capability,
            tag=tag,
        )

    def status(self, plugin_id: str | None = None) -> dict[str, Any]:
        """A JSON-serialisable status: one plugin, or the whole host."""
        if plugin_id is not None:
            record = self.registry.get(plugin_id)
            data = record.to_dict()
            if record.instance is not None:
                data["stats"] = dict(record.instance.stats())
            name = self._running(record).runtime
            runtime = (self.runtime_for(self._running(record)) if name in _ALWAYS_RUNTIMES
                       else self._runtimes.get(name))
            data["enforced_limits"] = sorted(
                record.manifest.limits.declared() & runtime.enforces if runtime else ()
            )
            data["capabilities"] = sorted(runtime.capabilities) if runtime else []
            return data
        counts: dict[str, int] = {}
        for record in self.registry:
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        return {
            "host_version": str(self.host_version),
            "plugins": len(self.registry),
            "states": counts,
            "problems": [
                {"location": p.location, "error": p.error.to_dict() if p.error else None}
                for p in self.problems
            ],
            "runtimes": self._runtime_names(),
        }



class SyncPluginHost:
    """Blocking facade for applications without an event loop.

    The async host runs on a private event loop in a daemon thread (plugins that hold loop-bound
    resources — pipes, sockets — stay on that one loop). ``close()`` stops it.

        with SyncPluginHost(PluginHost(["plugins"])) as host:
            host.start()
            host.call("hello", "greet", name="Ada")
    """

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="plughost-loop", daemon=True
        )
        self._thread.start()
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the host's loop and wait for its result."""
        if self._closed:
            coro.close()
            raise OperationRefused("This SyncPluginHost was closed.", code="host.closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> LoadReport:
        return self.run(self.host.start())

    def activate(self, plugin_id: str) -> PluginRecord:
        return self.run(self.host.activate(plugin_id))

    def deactivate(self, plugin_id: str, *, cascade: bool = False) -> PluginRecord:
        return self.run(self.host.deactivate(plugin_id, cascade=cascade))

    def unload(self, plugin_id: str) -> PluginRecord:
        return self.run(self.host.unload(plugin_id))

    def call(self, plugin_id: str, target: str, /, **kwargs: Any) -> Any:
        return self.run(self.host.call(plugin_id, target, **kwargs))

    def reload(self, plugin_id: str, root: str | Path | None = None) -> ReloadResult:
        return self.run(self.host.reload(plugin_id, root))

    def get(self, plugin_id: str) -> PluginRecord:
        return self.host.get(plugin_id)

    def list(self, **filters: Any) -> list[PluginRecord]:
        return self.host.list(**filters)

    def status(self, plugin_id: str | None = None) -> dict[str, Any]:
        return self.host.status(plugin_id)

    def close(self) -> None:
        """Close the host and stop the loop thread. Idempotent."""
        if self._closed:
            return
        try:
            self.run(self.host.aclose())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> SyncPluginHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
