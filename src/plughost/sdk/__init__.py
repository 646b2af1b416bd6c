"""TEMP stub of the plugin-author front door (the lead's real module replaces it on merge)."""

from plughost.sdk.decorators import channel, collect_exports, command, hookimpl, on
from plughost.sdk.plugin import Plugin

__all__ = ["Plugin", "channel", "collect_exports", "command", "hookimpl", "on"]
