"""Channels: a plugin streams a reply token by token; the reader applies backpressure.

Run: python docs/examples/channels_stream.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from plughost.core.channels import Channel, ChannelRegistry


async def main() -> dict[str, Any]:
    channels = ChannelRegistry()
    produced: list[str] = []

    async def stream(ch: Channel) -> None:  # the plugin's handler, one task per open channel
        prompt = await ch.receive()
        for token in f"Echo: {prompt}".split():
            await ch.send(token)  # waits while the reader's buffer (2) is full
            produced.append(token)
        # returning closes the plugin's end: the reader's loop ends after the last token

    channels.register("ai", "stream", stream, buffer=2)   # served as "ai.stream"

    ch = await channels.open("ai.stream")
    await ch.send("what is backpressure")
    for _ in range(20):
        await asyncio.sleep(0)  # give the plugin every chance to run ahead...
    ahead = len(produced)   # ...it cannot: two tokens fit in the buffer, the third waits
    tokens = [token async for token in ch]
    return {"ahead": ahead, "tokens": tokens, "closed": ch.closed}


if __name__ == "__main__":
    for key, value in asyncio.run(main()).items():
        print(f"{key}: {value}")
