"""Channels served one call at a time, for runtimes whose handlers are calls that return.

A native library and a WebAssembly module cannot hold a live channel object: their channel
handler is an ordinary JSON call, made once per step of the conversation, with

    {"channel": N, "event": "open"}                  when the channel is opened,
    {"channel": N, "event": "message", "data": ...}  for each message from the opener,
    {"channel": N, "event": "close"}                 when the opener closed its end (last step),

where ``N`` numbers the open channel (so the plugin can keep per-channel state), and answered
with ``null`` (nothing to send) or ``{"send": [messages...], "close": true|false}``: the messages
go to the opener in order, and ``"close": true`` ends the channel from the plugin's side. A
failed step, or any other answer, aborts the channel with the reason. The steps of one channel
never overlap. docs/native.md and docs/wasm-abi.md show it from the plugin's side.

Standard library only: the native child runner imports it too.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from plughost.errors import PluginError

__all__ = ["ChannelEnd", "answer_of", "serve_by_steps"]

_ids = itertools.count(1)


class ChannelEnd(Protocol):
    """The plugin's end of an opened channel, as far as this module uses it."""

    async def send(self, message: Any) -> None: ...

    def __aiter__(self) -> Any: ...


def answer_of(answer: Any, what: str) -> tuple[list[Any], bool]:
    """``(messages to send, close?)`` from a plugin's answer to one channel step."""
    if answer is None:
        return [], False
    if isinstance(answer, dict) and set(answer) <= {"send", "close"}:
        sends = answer.get("send", [])
        close = answer.get("close", False)
        if isinstance(sends, list) and isinstance(close, bool):
            return sends, close
    raise PluginError(
        f"channel handler {what} answered {json.dumps(answer, default=repr)[:200]}; a channel "
        'step answers null or {"send": [messages...], "close": true|false}',
        code="plugin.error")


async def serve_by_steps(channel: ChannelEnd, step: Callable[[dict[str, Any]], Awaitable[Any]],
                         what: str) -> None:
    """Serve ``channel`` by calling ``step(args)`` for each step (see the module docstring)."""
    handle = next(_ids)

    async def one(event: str, *data: Any) -> bool:
        args: dict[str, Any] = {"channel": handle, "event": event}
        if data:
            args["data"] = data[0]
        sends, close = answer_of(await step(args), what)
        for message in sends:
            await channel.send(message)
        return close

    if await one("open"):
        return
    async for message in channel:
        if await one("message", message):
            return
    await one("close")
