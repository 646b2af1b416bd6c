"""Extension points: declare a spec, implement it from two plugins, order them, call it.

Run: python docs/examples/hooks_pipeline.py
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from plughost.core.hooks import HookRegistry, hookspec


class ChatHooks(Protocol):
    """The host's contract: each method becomes the extension point chat.<method>."""

    @hookspec(policy="pipeline")
    def before_send(self, message: str, user: str) -> str:
        """Transform an outgoing message; each implementation gets the previous result."""

    @hookspec(policy="first")
    def pick_model(self, prompt: str) -> str:
        """The first plugin that answers chooses the model."""


def main() -> dict[str, Any]:
    hooks = HookRegistry()
    hooks.add_spec(ChatHooks, prefix="chat")

    # Plugin "links" would run first by priority; "profanity" insists on running before it.
    hooks.register("links", "chat.before_send",
                   lambda message: message.replace("https://", "<link>"), priority=10)
    hooks.register("profanity", "chat.before_send",
                   lambda message: message.replace("darn", "****"), before=["links"])

    # A wrapper runs around the others: here it records what went in and what came out.
    seen: list[tuple[str, str]] = []

    def audit(message: str) -> Any:
        result = yield  # the other implementations run here
        seen.append((message, result))
        return result

    hooks.register("audit", "chat.before_send", audit, wrapper=True)

    # An implementation may take any subset of the spec's parameters.
    hooks.register("small", "chat.pick_model", lambda prompt: None)  # passes
    hooks.register("big", "chat.pick_model",
                   lambda prompt: "big-model" if len(prompt) > 10 else None)

    sent = hooks.call("chat.before_send", message="darn https://x.org", user="ann")
    model = hooks.call("chat.pick_model", prompt="a long enough prompt")
    order = [impl.plugin_id for impl in hooks["chat.before_send"].implementations()]

    # Async code awaits async (and out-of-process) implementations with acall.
    async def shout(message: str) -> str:
        return message.upper()

    hooks.register("shout", "chat.before_send", shout, trylast=True)
    loud = asyncio.run(hooks.acall("chat.before_send", message="darn it", user="bo"))

    return {"sent": sent, "model": model, "order": order, "audit": seen, "loud": loud}


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
