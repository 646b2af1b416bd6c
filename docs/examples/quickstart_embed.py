"""Quickstart: embed a plugin host in an asyncio application.

Run: python docs/examples/quickstart_embed.py [PLUGINS_DIR]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from plughost import PluginHost, State

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def main(plugins_dir: Path) -> dict[str, object]:
    async with PluginHost([plugins_dir]) as host:
        report = await host.start()  # discover → resolve → load → activate (startup plugins)
        print(report)

        greeting = await host.call("hello", "greet", name="Ada")

        # lyrics-lrc declares activation = ["manual"]: resolved now, imported on first use.
        assert host.get("lyrics-lrc").state is State.RESOLVED
        lyrics = await host.call("lyrics-lrc", "lyrics", track_id="t1")

        tracks = await host.call("music-local", "search", query="satie")
        return {"greeting": greeting, "lyrics": lyrics, "tracks": tracks}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES
    print(asyncio.run(main(target)))
