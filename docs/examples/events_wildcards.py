"""Events: wildcard subscriptions, sync and async subscribers, a bounded queue that drops.

Run: python docs/examples/events_wildcards.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from plughost.core.bus import Event, EventBus


async def main() -> dict[str, Any]:
    bus = EventBus()
    log: list[str] = []

    # Sync subscribers run inside emit(), in subscription order.
    bus.subscribe("chat.*", lambda e: log.append(f"one segment: {e.topic}"))
    bus.subscribe("chat.#", lambda e: log.append(f"any depth: {e.topic}"))

    # An async subscriber gets its own bounded queue; when full, this one drops (and counts).
    tokens: list[str] = []

    async def on_token(event: Event) -> None:
        await asyncio.sleep(0)  # pretend to render
        tokens.append(event.payload)

    sub = bus.subscribe("ui.token", on_token, queue=3, when_full="drop")

    bus.emit("chat.message", {"text": "hi"}, source="ui")
    bus.emit("chat.message.edited", {"text": "hi!"}, source="ui")
    for token in ["a", "b", "c", "d", "e"]:
        bus.emit("ui.token", token)  # a burst: more than the queue holds
    await bus.drain()  # wait until async subscribers have caught up

    return {"log": log, "tokens": tokens, "dropped": sub.dropped}


if __name__ == "__main__":
    for key, value in asyncio.run(main()).items():
        print(f"{key}: {value}")
