"""What install, update, rollback and uninstall do to the *running* host.

Each operation asks the host (:meth:`PluginHost.add`, :meth:`~PluginHost.replace`,
:meth:`~PluginHost.remove`) — nothing here touches the host's registry or a plugin's state —
and returns an undo callable (run from the installer's worker thread when a later step fails,
e.g. the commit), or raises having put the host back as it was. The state handover of update
and rollback is the host's: :meth:`PluginHost.replace` goes through the runtime contract's
``export_state`` / ``import_state``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from plughost.core.lifecycle import State
from plughost.core.manifest import Manifest
from plughost.core.registry import PluginRecord
from plughost.errors import InstallError, PlughostError
from plughost.host import PluginHost, failure_of
from plughost.services.installer import Undo

__all__ = ["HostOps", "record_error"]


class HostOps:
    """Host-side steps of the install pipeline, for one :class:`PluginHost`.

    :param host: the running host.
    :param run: runs a coroutine on the host's event loop and waits for it (the undo callables
        are called from worker threads).
    :param run_plugins: ``False`` where no plugin may run (the CLI beside no server): new
        versions are registered and resolved, never loaded or activated.
    :param near: ``await near(id, uses=ids)`` before each operation on ``id`` (whose new
        version uses ``ids``): registers in the host what the operation reads, where the
        host does not have every installed plugin (see ``PluginService._near``).
    """

    def __init__(self, host: PluginHost, run: Callable[[Awaitable[Any]], Any], *,
                 run_plugins: bool = True,
                 near: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.host = host
        self._run = run
        self._run_plugins = run_plugins
        self._near = near

    async def _touch(self, plugin_id: str, manifest: Manifest | None = None) -> None:
        if self._near is not None:
            uses = () if manifest is None else (*manifest.dependencies,
                                                *manifest.optional_dependencies)
            await self._near(plugin_id, uses=uses)

    def _undo(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        return lambda: self._run(fn())

    async def add(self, manifest: Manifest, root: Path, activate: bool) -> Undo:
        """Register a newly installed plugin; with ``activate`` (unless it is lazy), prove it
        activates — a failure undoes the registration and is raised."""
        await self._touch(manifest.id, manifest)
        host = self.host
        existing = host.registry.find(manifest.id)
        if existing is not None:
            raise InstallError(
                f"a plugin {manifest.id} is already loaded from {existing.root or existing.source}"
                " (a development folder under plugins_dir?); remove it before installing",
                code="install.conflict", plugin_id=manifest.id)
        record = host.add(manifest, root, source="installed")

        async def undo() -> None:
            if host.registry.find(manifest.id) is record:
                await host.remove(manifest.id)

        host.resolve(only=[manifest.id])
        try:
            if record.state is State.FAILED:
                raise record_error(record, "resolve")
            if activate and self._run_plugins and not manifest.is_lazy:
                await host.activate(manifest.id)
                # Missing required settings do not undo the install: the plugin stays,
                # visible as ``needs-config``, for the operator to configure and enable.
                if record.state not in (State.ACTIVE, State.NEEDS_CONFIG):
                    raise record_error(record, "activate", undone=True)
        except BaseException:
            await undo()
            raise
        return self._undo(undo)

    async def switch(self, manifest: Manifest, root: Path) -> Undo:
        """Replace the running version by ``manifest`` at ``root`` (see the updater doc)."""
        await self._touch(manifest.id, manifest)
        return self._undo(await self.host.replace(manifest, root, source="installed",
                                                  prove=self._run_plugins))

    async def remove(self, plugin_id: str) -> Undo:
        """Take an uninstalled plugin out of the host; the undo registers it again."""
        await self._touch(plugin_id)
        host = self.host
        record = host.registry.find(plugin_id)
        if record is None:
            return None
        was_active = record.state is State.ACTIVE
        enabled = record.state is not State.DISABLED
        await host.remove(plugin_id)

        async def undo() -> None:
            if host.registry.find(plugin_id) is None:
                host.add(record.manifest, record.root, source=record.source, enabled=enabled)
                host.resolve(only=[plugin_id])
                if was_active:
                    await host.activate(plugin_id)

        return self._undo(undo)


def record_error(record: PluginRecord, phase: str, *, undone: bool = False) -> PlughostError:
    """Why ``record`` is not where ``phase`` should have left it, as an error to raise."""
    suffix = (" The install was undone; install with --no-activate to keep it installed "
              "without running it.") if undone else ""
    return failure_of(record, phase, suffix=suffix)
