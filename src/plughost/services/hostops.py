"""What install, update, rollback and uninstall do to the *running* host.

Each operation returns an undo callable (run from the installer's worker thread when a later
step fails, e.g. the commit) or raises having put the host back as it was. The state handover of
update and rollback lives here: ``export_state()`` on the running instance (JSON only, never
pickle), ``import_state(state, from_version)`` on the new one before it activates.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from plughost.core.contract import StateHandover
from plughost.core.lifecycle import State
from plughost.core.manifest import Manifest
from plughost.core.registry import PluginRecord
from plughost.errors import (
    InstallError,
    PlughostError,
    PluginActivationError,
)
from plughost.host import PluginHost
from plughost.services.installer import Undo

__all__ = ["HostOps", "record_error"]


class HostOps:
    """Host-side steps of the install pipeline, for one :class:`PluginHost`.

    :param host: the running host.
    :param run: runs a coroutine on the host's event loop and waits for it (the undo callables
        are called from worker threads).
    """

    def __init__(self, host: PluginHost, run: Callable[[Awaitable[Any]], Any]) -> None:
        self.host = host
        self._run = run

    def _undo(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        return lambda: self._run(fn())


    async def add(self, manifest: Manifest, root: Path, activate: bool) -> Undo:
        host = self.host
        existing = host.registry.find(manifest.id)
        if existing is not None:
            raise InstallError(
                f"a plugin {manifest.id} is already loaded from {existing.root or existing.source}"
                " (a development folder under plugins_dir?); remove it before installing",
                code="install.conflict", plugin_id=manifest.id)
        record = host.add_plugin(manifest, root, source="installed")

        async def undo() -> None:
            with contextlib.suppress(PlughostError):
                await host.unload(manifest.id, cascade=True)
            if host.registry.find(manifest.id) is record:
                host.registry.remove(manifest.id)
            host.resolve()

        host.resolve()
        try:
            if record.state is State.FAILED:
                raise record_error(record, "resolve")
            if activate and not manifest.is_lazy:
                await host.activate(manifest.id)
                if record.state is not State.ACTIVE:
                    raise record_error(record, "activate", undone=True)
        except BaseException:
            await undo()
            raise
        return self._undo(undo)

    async def switch(self, manifest: Manifest, root: Path, from_version: str) -> Undo:
        """Replace the running version by ``manifest`` at ``root`` (see the updater doc)."""
        host = self.host
        pid = manifest.id
        old = host.registry.find(pid)
        old_state = old.state if old is not None else None
        was_active = old_state is State.ACTIVE
        dependents = host.dependents(pid, states=[State.ACTIVE]) if was_active else []
        state: Any = None
        if was_active:
            assert old is not None
            state = await _export_state(old)
            await host.deactivate(pid, cascade=True)
        if old is not None:
            await host.unload(pid)
            host.registry.remove(pid)
        new = host.add_plugin(manifest, root, source="installed")
        host.resolve()

        async def restore(handover: Any = None, handover_from: str = from_version) -> None:
            with contextlib.suppress(PlughostError):
                await host.unload(pid, cascade=True)
            if host.registry.find(pid) is new:
                host.registry.remove(pid)
            if old is not None:
                host.registry.add(old)
                host.resolve()
                if was_active:
                    await host.load(pid)
                    if handover is not None and old.instance is not None:
                        with contextlib.suppress(PlughostError):
                            await _import_state(old, handover, handover_from)
                    await host.activate(pid)
                    for dep in dependents:
                        with contextlib.suppress(PlughostError):
                            await host.activate(dep)
            else:
                host.resolve()

        try:
            if new.state is State.FAILED:
                raise record_error(new, "resolve")
            # The new version must prove it activates and is healthy before it is committed —
            # also when the old one was not running here (a one-shot CLI process, a plugin that
            # failed at start). A lazy plugin that was not active stays dormant.
            if was_active or not manifest.is_lazy:
                await host.load(pid)
                loaded: State = new.state  # load() moved it on (mypy cannot see that)
                if loaded is State.FAILED:
                    raise record_error(new, "import")
                if state is not None:
                    await _import_state(new, state, from_version)
                await host.activate(pid)
                if new.state is not State.ACTIVE:
                    raise record_error(new, "activate")
                health = await new.instance.health()
                if not health.ok:
                    raise InstallError(
                        f"{pid} {manifest.version} activated but its health check failed"
                        f"{': ' + health.detail if health.detail else ''}; the previous version "
                        "was restored", code="install.health", plugin_id=pid)
                for dep in dependents:
                    record = await host.activate(dep)
                    if record.state is not State.ACTIVE:
                        raise InstallError(
                            f"{dep}, which depends on {pid}, did not re-activate with "
                            f"{manifest.version}; the previous version was restored",
                            code="install.dependent", plugin_id=pid,
                            details={"dependent": dep})
                if old_state is State.DEACTIVATED:
                    # The operator had deactivated it: checked, now back to how it was.
                    await host.deactivate(pid)
        except BaseException:
            await restore(state)
            raise

        async def undo() -> None:
            if new.state is State.ACTIVE:
                await restore(await _export_state(new), str(manifest.version))
            else:
                await restore(state)

        return self._undo(undo)

    async def remove(self, plugin_id: str) -> Undo:
        host = self.host
        record = host.registry.find(plugin_id)
        if record is None:
            return None
        was_active = record.state is State.ACTIVE
        optional_dependents = host.dependents(plugin_id, states=[State.ACTIVE])
        await host.unload(plugin_id, cascade=True)
        host.registry.remove(plugin_id)
        host.resolve()
        for dep in optional_dependents:  # they only used it optionally: bring them back
            with contextlib.suppress(PlughostError):
                await host.activate(dep)

        async def undo() -> None:
            if host.registry.find(plugin_id) is None:
                host.registry.add(record)
                host.resolve()
                if was_active:
                    await host.activate(plugin_id)

        return self._undo(undo)



async def _export_state(record: PluginRecord) -> Any:
    """The plugin's ``export_state()``, checked to be JSON (never pickled)."""
    instance = record.instance
    if not isinstance(instance, StateHandover):
        return None
    try:
        state = await instance.export_state()
    except Exception as exc:
        raise InstallError(
            f"{record.id}: export_state() raised {type(exc).__name__}: {exc}; the update was "
            "refused and the running version keeps running", code="install.state",
            plugin_id=record.id) from exc
    try:
        return json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InstallError(
            f"{record.id}: export_state() returned something that is not JSON-serialisable "
            f"({exc}); state is handed over as JSON only. The update was refused and the "
            "running version keeps running", code="install.state", plugin_id=record.id
        ) from None


async def _import_state(record: PluginRecord, state: Any, from_version: str) -> None:
    instance = record.instance
    if not isinstance(instance, StateHandover):
        return
    try:
        await instance.import_state(state, from_version)
    except PlughostError:
        raise
    except Exception as exc:
        raise InstallError(
            f"{record.id} {record.manifest.version}: import_state() raised "
            f"{type(exc).__name__}: {exc}; the previous version was restored",
            code="install.state", plugin_id=record.id) from exc


def record_error(record: PluginRecord, phase: str, *, undone: bool = False) -> PlughostError:
    error = record.error
    suffix = (" The install was undone; install with --no-activate to keep it installed "
              "without running it.") if undone else ""
    if isinstance(error, PlughostError):
        if suffix:
            error.message += suffix
            error.args = (error.message,)
        return error
    message = (f"{record.id} is {record.state.value} after {phase}"
               + (f": {error}" if error else "") + "." + suffix)
    return PluginActivationError(message, plugin_id=record.id, phase=phase)

