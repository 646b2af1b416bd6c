"""A music source: searches a small library held in its configuration."""

from __future__ import annotations

from typing import Any

from plughost.sdk import Plugin, PluginContext


class LocalMusicSource(Plugin):
    def activate(self, ctx: PluginContext) -> None:
        self.library: list[dict[str, Any]] = list(ctx.config.get("library", []))

    def search(self, query: str) -> list[dict[str, Any]]:
        q = query.casefold()
        return [
            t for t in self.library if q in t["title"].casefold() or q in t["artist"].casefold()
        ]

    def track(self, track_id: str) -> dict[str, Any] | None:
        return next((t for t in self.library if t["id"] == track_id), None)
