"""TEMP stub of plughost.sdk.Plugin per CONTRACTS.md (the lead's real module replaces it)."""

from __future__ import annotations

from typing import Any


class Plugin:
    """Base class: activate/deactivate/health; ``ctx`` is set before activate."""

    ctx: Any

    def activate(self, ctx: Any) -> Any:
        """Called once when the plugin becomes active."""
        self.ctx = ctx

    def deactivate(self) -> Any:
        """Called once when the plugin is deactivated."""

    def health(self) -> Any:
        """True when healthy."""
        return True
