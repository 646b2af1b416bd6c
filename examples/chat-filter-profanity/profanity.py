"""Masks listed words in outgoing messages (extension point ``chat.before_send``, a pipeline).

It declares ``before=["chat-filter-links"]``: the link filter must see the cleaned text, whatever
priorities say.
"""

from __future__ import annotations

import re

from plughost.sdk import Plugin, PluginContext, command, hookimpl


class ProfanityFilter(Plugin):
    def activate(self, ctx: PluginContext) -> None:
        words = [re.escape(w) for w in ctx.config.get("words", [])]
        self.pattern = re.compile(r"\b(" + "|".join(words) + r")\b", re.I) if words else None
        self.masked = 0

    @hookimpl("chat.before_send", before=["chat-filter-links"])
    def scrub(self, message: str) -> str:
        if self.pattern is None:
            return message
        cleaned, count = self.pattern.subn(lambda m: "*" * len(m.group(0)), message)
        self.masked += count
        return cleaned

    @command("stats")
    def stats(self) -> dict[str, int]:
        return {"masked": self.masked}
