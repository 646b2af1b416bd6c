"""docs/config.md: validate, version, refuse and restore a plugin's configuration."""

from __future__ import annotations

import tempfile
from typing import Any

from plughost.errors import ConfigInvalid, ConfigRejected
from plughost.services.config import ConfigManager

SCHEMA = {
    "type": "object",
    "required": ["webhook_url"],
    "properties": {
        "webhook_url": {"type": "string", "pattern": "^https://", "x-secret": True},
        "channel": {"type": "string", "default": "#general"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
    },
}


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        config = ConfigManager.open(home, environ={"SLACK_HOOK": "https://hooks.example/T/1"})
        config.register("notify", SCHEMA, {"channel": "#ops"}, strict=False)

        await config.set("notify", {"webhook_url": "${SLACK_HOOK}"})          # version 1

        try:
            await config.set("notify", {"retries": -1, "channel": 5})
        except ConfigInvalid as exc:
            errors = sorted(p.path for p in exc.problems)                     # every error

        def refuse_dev(old: dict[str, Any], new: dict[str, Any]) -> None:     # the plugin
            if new["channel"] == "#dev":
                raise ValueError("this plugin never posts to #dev")

        config.on_change("notify", refuse_dev)
        try:
            await config.set("notify", {"channel": "#dev"})
        except ConfigRejected as exc:
            refused = exc.code                                                # rolled back

        await config.set("notify", {"channel": "#alerts"})                    # version 2
        await config.restore("notify", 1)                                     # version 3
        result = {
            "errors": errors,
            "refused": refused,
            "shown": config.get("notify"),                                    # secrets: ***
            "history": [(r.version, r.action) for r in config.history("notify")],
        }
        config.close()
        return result
