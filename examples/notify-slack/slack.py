"""Posts notifications to a Slack incoming webhook read from the plugin's configuration."""

from __future__ import annotations

from typing import Any

from plughost.sdk import Plugin, PluginContext


class SlackNotifier(Plugin):
    def activate(self, ctx: PluginContext) -> None:
        if not ctx.config.get("webhook_url"):
            raise ValueError("webhook_url is not configured; set it with `plughost config set`")

    def on_config_change(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Refuse a change that would leave the plugin without a webhook (it is rolled back)."""
        if not new.get("webhook_url"):
            raise ValueError("webhook_url cannot be empty: notifications would be lost")

    def payload(self, message: str, channel: str | None = None) -> dict[str, Any]:
        """The JSON body Slack expects for ``message``."""
        return {"channel": channel or self.ctx.config.get("channel", "#general"), "text": message}

    async def notify(self, message: str, channel: str | None = None) -> int:
        """Send ``message``; returns the webhook's HTTP status. Goes through ``ctx.http``."""
        response = await self.ctx.http.post(
            self.ctx.config["webhook_url"], json=self.payload(message, channel)
        )
        return int(response.status_code)
