"""Streams replies token by token over the channel ``ai-stream.chat`` (an AI chat).

The "model" is a tiny deterministic responder so the example runs anywhere; a real plugin would
forward the tokens of an LLM client the same way. Each prompt received on the channel gets a
stream of ``{"token": ...}`` messages and then ``{"done": True, "tokens": n}``. ``send`` waits
while the UI's buffer is full, so a slow reader slows the model down instead of growing memory.

It is lazy (``activation = ["command:ai-stream.complete"]``): the first ``complete`` command
activates it; after that its channel is open for business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from plughost.sdk import Plugin, PluginContext, channel, command


def reply_tokens(prompt: str) -> Iterator[str]:
    """The 'model': a reply to ``prompt``, one token (word plus its space) at a time."""
    words = f"You asked: {prompt.strip()}. Here is my answer, streamed token by token.".split()
    for i, word in enumerate(words):
        yield word if i == len(words) - 1 else word + " "


class AIStream(Plugin):
    def activate(self, ctx: PluginContext) -> None:
        self.replies = 0

    @channel("chat", buffer=4)
    async def chat(self, ch) -> None:  # type: ignore[no-untyped-def]
        async for prompt in ch:
            count = 0
            for token in reply_tokens(str(prompt)):
                await ch.send({"token": token})  # backpressure: waits if the UI lags
                count += 1
                await asyncio.sleep(0)  # a real model yields while it computes
            await ch.send({"done": True, "tokens": count})
            self.replies += 1
            self.ctx.emit("ai-stream.reply.done", {"prompt": prompt, "tokens": count})

    @command("complete")
    def complete(self, prompt: str) -> str:
        return "".join(reply_tokens(prompt))
