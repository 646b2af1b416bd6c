"""The plugin-author front door."""

from plughost.sdk.decorators import channel, collect_exports, command, hookimpl, on

__all__ = [
    "channel",
    "collect_exports",
    "command",
    "hookimpl",
    "on",
]
