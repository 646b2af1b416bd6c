"""The base class plugin authors subclass.

Every callback may be sync or async; the host adapts once at the call site. A plugin needs none of
them: a subclass that only carries decorated methods is a complete plugin. How they map onto the
runtime contract is in ``docs/runtimes.md``.

    from plughost.sdk import Plugin

    class Hello(Plugin):
        def activate(self, ctx):
            ctx.logger.info("hello from %s", ctx.plugin_id)
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plughost.core.context import PluginContext
    from plughost.runtimes.base import Health

__all__ = ["Plugin"]


class Plugin:
    """Base class for plugins. Instantiated by the runtime with no arguments."""

    ctx: PluginContext
    """The plugin's context; set by the runtime just before :meth:`activate`."""

    def activate(self, ctx: PluginContext) -> Awaitable[None] | None:
        """Called once when the plugin becomes active. Raise to refuse activation."""
        return None

    def deactivate(self) -> Awaitable[None] | None:
        """Called once when the plugin is deactivated; release what ``activate`` acquired."""
        return None

    def health(self) -> bool | Health | Awaitable[bool | Health]:
        """Report liveness. ``True``/``False`` or a :class:`~plughost.runtimes.base.Health`."""
        return True

    def export_state(self) -> Any:
        """Optional: JSON-serialisable state handed to the next version on update."""
        return None

    def import_state(self, state: Any, from_version: str) -> Awaitable[None] | None:
        """Optional: receive the state exported by ``from_version`` before activation."""
        return None

    def on_config_change(self, old: Mapping[str, Any],
                         new: Mapping[str, Any]) -> Awaitable[None] | None:
        """Optional: the operator changed the configuration. Raise to refuse the change."""
        return None

    def on_enable(self) -> Awaitable[None] | None:
        """Optional: the operator enabled the plugin (called once it is active again)."""
        return None

    def on_disable(self) -> Awaitable[None] | None:
        """Optional: the operator is disabling the plugin (called just before
        :meth:`deactivate`)."""
        return None
