"""The plugin author's front door.

    from plughost.sdk import Plugin, PluginContext, hookimpl, on, command, channel

Everything here depends only on ``plughost.core`` (standard library), so a plugin that imports
the SDK costs nothing extra to load.
"""

from plughost.core.context import PluginContext
from plughost.runtimes.base import Health
from plughost.sdk.decorators import channel, collect_exports, command, hookimpl, on
from plughost.sdk.plugin import Plugin

__all__ = [
    "Health",
    "Plugin",
    "PluginContext",
    "channel",
    "collect_exports",
    "command",
    "hookimpl",
    "on",
]
