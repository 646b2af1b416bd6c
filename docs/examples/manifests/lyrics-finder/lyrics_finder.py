"""The lyrics-finder example plugin: the code its plugin.toml `entry` names.

It looks lyrics up in an in-memory catalogue so the example runs without a network.
"""

from __future__ import annotations

from typing import Any

CATALOGUE = {
    ("daft punk", "one more time"): "One more time\nWe're gonna celebrate",
}


class LyricsFinder:
    """Entry object: the host instantiates it and calls ``activate``/``deactivate``."""

    def __init__(self) -> None:
        self.language = "en"

    def activate(self, ctx: Any) -> None:
        self.language = ctx.config.get("language", "en")

    def deactivate(self) -> None:
        self.language = "en"

    def search(self, artist: str, title: str) -> str | None:
        """The lyrics for ``artist`` / ``title``, or None when unknown."""
        return CATALOGUE.get((artist.casefold(), title.casefold()))
