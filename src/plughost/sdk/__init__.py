"""The plugin author's front door.

    from plughost.sdk import Plugin, PluginContext, hookimpl, on, command, channel

Everything here depends only on ``plughost.core`` (standard library), so a plugin that imports
the SDK costs nothing extra to load. Names load on first use (PEP 562): ``from plughost.sdk
import Plugin`` in a plugin subprocess imports the base class, not the context machinery.
"""

import importlib as _importlib

# Not typing.TYPE_CHECKING: importing typing costs a plugin subprocess milliseconds at start-up.
# Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from plughost.core.context import PluginContext
    from plughost.runtimes.base import Health
    from plughost.sdk.decorators import channel, collect_exports, command, hookimpl, on
    from plughost.sdk.plugin import Plugin

del TYPE_CHECKING  # not an export

_LAZY: dict[str, str] = {
    "Health": "plughost.runtimes.base",
    "Plugin": "plughost.sdk.plugin",
    "PluginContext": "plughost.core.context",
    "channel": "plughost.sdk.decorators",
    "collect_exports": "plughost.sdk.decorators",
    "command": "plughost.sdk.decorators",
    "hookimpl": "plughost.sdk.decorators",
    "on": "plughost.sdk.decorators",
}

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


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plughost.sdk' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value
