"""Replaces URLs in outgoing messages with ``<link: host>`` (extension point ``chat.before_send``).

Its priority (10) would put it first; the profanity filter's ``before=["chat-filter-links"]``
constraint wins, so it runs second. ``after=`` says the same from this side.
"""

from __future__ import annotations

import re

from plughost.sdk import Plugin, hookimpl

URL = re.compile(r"https?://([^/\s]+)\S*")


class LinkFilter(Plugin):
    @hookimpl("chat.before_send", priority=10, after=["chat-filter-profanity"])
    def shorten(self, message: str) -> str:
        return URL.sub(lambda m: f"<link: {m.group(1)}>", message)
